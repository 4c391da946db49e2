// Issue 13, part 3: examples/systemd's zd.socket + zd.service parse as unit files (sections of
// key=value lines) and agree with each other: the service is the socket's, the socket's port is
// the app's PORT, zd's command line parses, and TimeoutStopSec covers zd's longest stop.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseRunArgs } from '../../src/cli/run-options.ts';

const dir = fileURLToPath(new URL('../../examples/systemd/', import.meta.url));

type Unit = Map<string, Map<string, string[]>>;

/** systemd.syntax(7), the part these files use: [Section], Key=value, # and ; comments, no continuations. */
function parseUnit(file: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  readFileSync(join(dir, file), 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
      assert.ok(!line.endsWith('\\'), `${file}:${i + 1}: no line continuations here`);
      const header = /^\[([A-Za-z]+)\]$/.exec(line);
      if (header) {
        assert.ok(!unit.has(header[1]!), `${file}:${i + 1}: section [${header[1]}] twice`);
        section = new Map();
        unit.set(header[1]!, section);
        return;
      }
      const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
      assert.ok(kv, `${file}:${i + 1}: not Key=value: ${line}`);
      assert.ok(section, `${file}:${i + 1}: a setting before any [Section]`);
      const values = section.get(kv[1]!) ?? [];
      values.push(kv[2]!.trim());
      section.set(kv[1]!, values);
    });
  return unit;
}

function one(unit: Unit, section: string, key: string): string | undefined {
  const values = unit.get(section)?.get(key);
  assert.ok(!values || values.length === 1, `${section}.${key} set ${values?.length} times`);
  return values?.[0];
}

function seconds(value: string): number {
  const match = /^(\d+)(s|min)?$/.exec(value);
  assert.ok(match, `not a whole number of seconds: ${value}`);
  return Number(match[1]) * (match[2] === 'min' ? 60 : 1);
}

const socket = parseUnit('zd.socket');
const service = parseUnit('zd.service');

test('zd.socket: one stream socket, not accept-per-connection, named, for zd.service, started with sockets.target', () => {
  assert.deepEqual([...socket.keys()], ['Unit', 'Socket', 'Install']);
  assert.match(one(socket, 'Socket', 'ListenStream') ?? '', /^(\d+|\S+:\d+|\/\S+)$/);
  assert.equal(one(socket, 'Socket', 'Accept') ?? 'no', 'no', 'one socket for one zd');
  assert.match(one(socket, 'Socket', 'FileDescriptorName') ?? '', /^[^:\s]{1,255}$/, 'LISTEN_FDNAMES: no colon, at most 255 characters');
  assert.equal(one(socket, 'Socket', 'Service'), 'zd.service');
  assert.equal(one(socket, 'Install', 'WantedBy'), 'sockets.target');
});

test("zd.service: requires and follows zd.socket, whose port is the app's PORT", () => {
  assert.deepEqual([...service.keys()], ['Unit', 'Service', 'Install']);
  assert.equal(one(service, 'Unit', 'Requires'), 'zd.socket');
  assert.ok(one(service, 'Unit', 'After')!.split(/\s+/).includes('zd.socket'));
  assert.equal(one(service, 'Install', 'Also'), 'zd.socket', 'enabling zd enables its socket');
  const env = Object.fromEntries(one(service, 'Service', 'Environment')!.split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  const listen = one(socket, 'Socket', 'ListenStream')!;
  // A bare port (systemd binds [::]:PORT) or ADDRESS:PORT: the app's listen(PORT) takes either.
  const port = /(?:^|:)(\d+)$/.exec(listen)?.[1];
  assert.equal(port, env.PORT, `ListenStream=${listen} and PORT=${env.PORT}`);
});

test('zd.service: zd run parses; KillMode=mixed, HUP reload, on-failure restart, exit 2 not retried, TimeoutStopSec covers drain + kill', () => {
  const execStart = one(service, 'Service', 'ExecStart')!.split(/\s+/);
  assert.equal(execStart[0], '/usr/bin/node');
  const run = execStart.indexOf('run');
  assert.ok(run > 0 && execStart[run - 1]!.endsWith('bin/zd.js'), execStart.join(' '));
  const [, ...zdFlags] = execStart.slice(run + 1);
  const cwd = mkdtempSync(join(tmpdir(), 'zd-units-'));
  try {
    const options = parseRunArgs([fileURLToPath(new URL('../fixtures/serve.cjs', import.meta.url)), ...zdFlags], {}, cwd);
    const budget = options.config.shutdownDelayMs + options.config.drainTimeoutMs + options.config.killTimeoutMs;
    const stop = seconds(one(service, 'Service', 'TimeoutStopSec')!) * 1000;
    assert.ok(stop >= budget + 1000, `TimeoutStopSec ${stop} ms < ${budget} ms + 1 s`);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
  assert.equal(one(service, 'Service', 'KillMode'), 'mixed');
  assert.equal(one(service, 'Service', 'ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one(service, 'Service', 'Restart'), 'on-failure');
  assert.equal(one(service, 'Service', 'RestartPreventExitStatus'), '2');
  assert.equal(one(service, 'Service', 'SuccessExitStatus'), undefined, 'zd exits 0 on SIGTERM');
});

test('zd-app.service (no socket unit) is still there, and says so', () => {
  const plain = parseUnit('zd-app.service');
  assert.equal(plain.get('Unit')?.get('Requires'), undefined);
  assert.equal(one(plain, 'Service', 'KillMode'), 'mixed');
});
