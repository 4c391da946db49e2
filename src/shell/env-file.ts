// A dotenv file: what `--env-file` / `envFile` gives a generation's workers. Read at start and at
// every reload; a problem is refused with its line number, never half applied.
import { readFileSync } from 'node:fs';

export type EnvFileResult = { env: Record<string, string> } | { problems: string[] };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function readEnvFile(path: string, label = path): EnvFileResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { problems: [`${label}: cannot read the env file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`] };
  }
  return parseEnvFile(text, label);
}

/** KEY=VALUE lines; `export ` allowed; `#` comments; '…' literal; "…" with \n, \t, \", \\ escapes. */
export function parseEnvFile(text: string, label: string): EnvFileResult {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${label}:${i + 1}`;
    const body = line.startsWith('export ') ? line.slice('export '.length).trimStart() : line;
    const eq = body.indexOf('=');
    if (eq <= 0) {
      problems.push(`${where}: expected KEY=VALUE`);
      return;
    }
    const key = body.slice(0, eq).trim();
    if (!NAME.test(key)) {
      problems.push(`${where}: "${key.slice(0, 40)}" is not a variable name`);
      return;
    }
    const value = parseValue(body.slice(eq + 1).trim());
    if (value === null) {
      problems.push(`${where}: unterminated quote in the value of ${key}`);
      return;
    }
    env[key] = value;
  });
  return problems.length > 0 ? { problems } : { env };
}

function parseValue(raw: string): string | null {
  const quote = raw[0];
  if (quote === "'" || quote === '"') {
    const end = raw.indexOf(quote, 1);
    let close = end;
    if (quote === '"') {
      // The closing quote is the first one not escaped.
      close = -1;
      for (let i = 1; i < raw.length; i++) {
        if (raw[i] === '\\') i++;
        else if (raw[i] === '"') {
          close = i;
          break;
        }
      }
    }
    if (close === -1) return null;
    const inner = raw.slice(1, close);
    if (quote === "'") return inner;
    return inner.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
  }
  // Unquoted: a ` #` starts a comment.
  const hash = raw.search(/\s#/);
  return (hash === -1 ? raw : raw.slice(0, hash)).trim();
}
