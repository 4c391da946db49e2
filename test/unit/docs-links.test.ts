// The README and docs/ link to each other and into the repository by relative paths and #anchors:
// a page or a heading that moves must not leave a link pointing at nothing (issue #21).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/zd.ts';

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a Markdown file has: its headings' slugs (a repeated one gets -1, -2, …). */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The relative links of a Markdown file (outside code), as [target, #anchor or ''] pairs. */
export function links(markdown: string): Array<[string, string]> {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z]+:/i.test(target))
    .map((target) => {
      const hash = target.indexOf('#');
      return hash === -1 ? [target, ''] : [target.slice(0, hash), target.slice(hash + 1)];
    });
}

const pages = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

test('every relative link in the README and docs/ names a file that exists, and a heading it has', () => {
  const broken: string[] = [];
  for (const page of pages) {
    const text = readFileSync(join(repoRoot, page), 'utf8');
    for (const [target, anchor] of links(text)) {
      const file = target === '' ? join(repoRoot, page) : join(repoRoot, dirname(page), target);
      if (!existsSync(file)) {
        broken.push(`${page}: ${target} does not exist`);
        continue;
      }
      if (anchor === '') continue;
      if (statSync(file).isDirectory() || !file.endsWith('.md')) {
        broken.push(`${page}: #${anchor} on ${relative(repoRoot, file)}, which has no headings`);
        continue;
      }
      if (!anchors(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${relative(repoRoot, file)} has no heading #${anchor}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the README is read in five minutes: at most 300 lines, and every docs/ page is linked from it or from docs/README.md', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  assert.ok(readme.split('\n').length <= 300, `README.md has ${readme.split('\n').length} lines`);
  const index = readFileSync(join(repoRoot, 'docs', 'README.md'), 'utf8');
  const linked = new Set([...links(readme).map(([t]) => t.replace(/^docs\//, '')), ...links(index).map(([t]) => t)]);
  const unlinked = pages.filter((p) => p.startsWith('docs/') && p !== 'docs/README.md').filter((p) => !linked.has(p.slice('docs/'.length)));
  assert.deepEqual(unlinked, [], 'docs pages no one links to');
});

test('slug and anchors follow GitHub: punctuation and backticks dropped, repeats numbered', () => {
  assert.equal(slug("A canary's measuring: what it costs the workers"), 'a-canarys-measuring-what-it-costs-the-workers');
  assert.equal(slug('`zd upgrade` and the keeper'), 'zd-upgrade-and-the-keeper');
  assert.equal(slug('What happens when…'), 'what-happens-when');
  assert.deepEqual([...anchors('# A\n## Signals\n```\n# not a heading\n```\n### Signals\n')], ['a', 'signals', 'signals-1']);
  assert.deepEqual(links('[x](docs/a.md#b) [y](#c) [z](https://e.com) `[w](no.md)`'), [['docs/a.md', 'b'], ['', 'c']]);
});
