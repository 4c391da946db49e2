// Issue #5: what `zd inspect` shows, as pure functions: the terminal frame, the plain lines, the
// view folded from the stream, the message guard, the command line and the web page.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInspectArgs } from '../../src/cli/inspect.ts';
import type { StatusView, WorkerStatus } from '../../src/core/status.ts';
import { machineModel, MACHINES, stateIds } from '../../src/diagram/index.ts';
import { parseInspectMessage, type InspectMessage, type StepMessage } from '../../src/inspect/messages.ts';
import { messageLine } from '../../src/inspect/render-lines.ts';
import { renderTty, stripAnsi } from '../../src/inspect/render-tty.ts';
import { CHIPS, chipOf, stateChips } from '../../src/inspect/states.ts';
import { applyMessage, EMPTY_VIEW, RECENT_EVENTS, rolloutDisplay, type RecentEvent } from '../../src/inspect/view.ts';
import { inlineSvg, renderPage } from '../../src/inspect/web-page.ts';

const AT = new Date(2026, 0, 2, 14, 3, 7, 215).getTime();
const INVERSE = '\x1b[7m';

function worker(id: number, state: string, extra: Partial<WorkerStatus> = {}): WorkerStatus {
  return { id, pid: 1000 + id, slot: (id - 1) % 2, generation: id > 2 ? 2 : 1, state, ready: state.startsWith('listening'), restarts: 0, ...extra };
}

function status(workers: WorkerStatus[], rollout: StatusView['rollout'] = null, extra: Partial<StatusView> = {}): StatusView {
  return {
    phase: 'running',
    generation: rollout ? rollout.generation : 1,
    workers,
    desired: 2,
    ready: workers.filter((w) => w.ready).length,
    rollout,
    lastRollout: null,
    reloadQueued: false,
    parkedSlots: [],
    counters: { reloadsRequested: 0, rolloutsStarted: 0, replacementsStarted: 0, reloadsCoalesced: 0, reloadsRefused: 0, reloadsDropped: 0, crashes: 0 },
    ...extra,
  } as StatusView;
}

const replacing = { generation: 2, state: 'replacing', replaced: 1, total: 2, pendingSlots: [], bootingSlots: [1], canary: null };
const midRollout = status([worker(2, 'draining'), worker(3, 'listening.fresh'), worker(4, 'booting.online')], replacing);
const events: RecentEvent[] = Array.from({ length: RECENT_EVENTS }, (_, i) => ({ at: AT + i, level: i === 9 ? 'warn' : 'info', code: `ZD_EVENT_${i}`, msg: `event number ${i}` }));

/** The frame's lines from `worker N` to the next blank line or worker. */
function workerBlock(frame: string, id: number): string[] {
  const lines = stripAnsi(frame).split('\n');
  const start = lines.findIndex((line) => line.startsWith(`  worker ${id} `));
  assert.ok(start !== -1, `worker ${id} is in the frame`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !line.startsWith('    '));
  return [lines[start]!, ...rest.slice(0, end)];
}

describe('renderTty', () => {
  it('shows each worker on its machine with the current state in brackets and inverse video', () => {
    const frame = renderTty(midRollout, events, 200, { hello: { type: 'hello', name: 'web', app: '/srv/app.js', pid: 42, at: AT }, at: AT });
    const plain = stripAnsi(frame);
    assert.match(plain, /^zd inspect · 'web' · pid 42 · \/srv\/app\.js\n/);
    assert.match(plain, /running · generation 2 · 1\/2 ready · 14:03:07\.215\n/);
    for (const [id, state] of [[2, 'draining'], [3, 'listening.fresh'], [4, 'booting.online']] as const) {
      const block = workerBlock(frame, id);
      assert.match(block[0]!, new RegExp(`^  worker ${id}  pid ${1000 + id}  gen \\d  slot \\d  ${state.replace('.', '\\.')}$`));
      const chips = block.slice(1).join(' ');
      assert.equal(chips.match(/\[[^\]]+\]/g)?.join(), `[${state}]`, 'exactly one state is lit');
      // Every state of the machine, in the machine's order.
      const listed = chips.replace(/[[\]]/g, ' ').trim().split(/\s+/);
      assert.deepEqual(listed, CHIPS.worker);
    }
    assert.ok(frame.includes(`${INVERSE}[listening.fresh]`), 'the lit state is in inverse video');
    assert.match(plain, /\nROLLOUT  generation 2 · 1 of 2 replaced · booting slot 1\n {4} idle  \[replacing\]  canary\.booting   canary\.serving   canary\.judging   done   aborted \n/);
  });

  it('lists the last events with their time, newest last', () => {
    const plain = stripAnsi(renderTty(midRollout, events, 120));
    const lines = plain.slice(plain.indexOf('EVENTS\n')).split('\n').slice(1, -1);
    assert.equal(lines.length, RECENT_EVENTS);
    assert.equal(lines[0], '  14:03:07.215  ZD_EVENT_0  event number 0');
    assert.equal(lines.at(-1), '  14:03:07.224  ZD_EVENT_9  event number 9');
  });

  it('fits every line to the width, wrapping the states and cutting long text with …', () => {
    const long = status([worker(1, 'listening.stable', { restarts: 3 })], null, { parkedSlots: [1] });
    const longEvents = [{ at: AT, level: 'error', code: 'ZD_BOOT_FAILED', msg: 'x'.repeat(300) }];
    for (const width of [10, 24, 40, 80, 132]) {
      for (const frame of [renderTty(midRollout, events, width), renderTty(long, longEvents, width)]) {
        for (const line of stripAnsi(frame).split('\n')) {
          assert.ok([...line].length <= Math.max(24, width), `${JSON.stringify(line)} fits ${width} columns`);
        }
      }
    }
    const narrow = workerBlock(renderTty(midRollout, events, 40), 3);
    assert.ok(narrow.length > 2, 'the states wrap onto several lines');
    assert.match(stripAnsi(renderTty(long, longEvents, 40)), /ZD_BOOT_FAILED  x+…\n/);
  });

  it('keeps every state in its place when the state changes', () => {
    const a = workerBlock(renderTty(status([worker(1, 'listening.fresh')]), [], 80), 1).slice(1);
    const b = workerBlock(renderTty(status([worker(1, 'listening.stable')]), [], 80), 1).slice(1);
    assert.deepEqual(a.map((line) => line.length), b.map((line) => line.length));
    assert.equal(a.join('').replace(/[[\] ]/g, ''), b.join('').replace(/[[\] ]/g, ''));
  });

  it('shows a dead worker on its outcome in place of dead.*, and a state it does not know at the end', () => {
    const frame = stripAnsi(renderTty(status([worker(1, 'dead.crashed'), worker(2, 'hibernating')]), [], 200));
    const dead = workerBlock(frame, 1).slice(1).join(' ');
    assert.match(dead, /killing {2}\[dead\.crashed\]/);
    assert.doesNotMatch(dead, /dead\.\*/);
    assert.match(workerBlock(frame, 2).slice(1).join(' '), / dead\.\* {2}\[hibernating\]$/);
  });

  it('says what it waits for before the first snapshot', () => {
    assert.equal(stripAnsi(renderTty(null, [], 80)), 'zd inspect\nwaiting for the first snapshot…\n');
  });
});

describe('the worker and rollout states listed', () => {
  it('are read off the machines: every state a worker can be in, the final ones folded', () => {
    const model = machineModel(MACHINES.worker);
    for (const state of model.states.filter((s) => s.kind === 'atomic')) {
      const name = state.id.slice('worker.'.length);
      assert.equal(chipOf(CHIPS.worker, name), name, `${name} is listed`);
    }
    for (const state of model.states.filter((s) => s.kind === 'final')) {
      assert.equal(chipOf(CHIPS.worker, state.id.slice('worker.'.length)), 'dead.*');
    }
    assert.deepEqual(CHIPS.worker.slice(0, 4), ['booting.forking', 'booting.online', 'warming', 'listening.fresh']);
    assert.deepEqual(stateChips(MACHINES.rollout), ['idle', 'replacing', 'canary.booting', 'canary.serving', 'canary.judging', 'done', 'aborted']);
  });
});

describe('the view folded from the stream', () => {
  const step = (s: StatusView, logs: StepMessage['logs'] = [], transitions: StepMessage['transitions'] = []): StepMessage => ({
    type: 'step',
    at: AT,
    event: { type: 'worker.listening', workerId: 4 },
    transitions,
    logs,
    status: s,
  });

  it('keeps the last events only, and the rollout as a machine state after the status forgets it', () => {
    let view = applyMessage(EMPTY_VIEW, { type: 'snapshot', at: AT, status: status([worker(1, 'listening.fresh'), worker(2, 'listening.fresh')]) });
    assert.deepEqual(rolloutDisplay(view.status!, view.progress), { state: 'idle', generation: null, replaced: null, total: null, bootingSlots: [], reason: null });
    view = applyMessage(view, step(midRollout, Array.from({ length: 15 }, (_, i) => ({ level: 'info', code: `C${i}`, msg: 'm' }))));
    assert.equal(view.recent.length, RECENT_EVENTS);
    assert.equal(view.recent.at(-1)!.code, 'C14');
    assert.equal(rolloutDisplay(view.status!, view.progress).state, 'replacing');
    // The step that ends the rollout drops it from the status.
    const done = status([worker(3, 'listening.fresh'), worker(4, 'listening.fresh'), worker(2, 'draining')], null, {
      generation: 2,
      lastRollout: { generation: 2, outcome: 'done', reason: null, kind: 'reload' },
    });
    view = applyMessage(view, step(done, [], [{ machine: 'rollout', id: 2, from: 'replacing', event: 'rollout.ready', to: 'done' }]));
    assert.equal(view.steps, 2);
    assert.deepEqual(rolloutDisplay(view.status!, view.progress), { state: 'done', generation: 2, replaced: 2, total: 2, bootingSlots: [], reason: null });
    assert.match(stripAnsi(renderTty(view.status, view.recent, 120, { rollout: rolloutDisplay(view.status!, view.progress) })), /ROLLOUT {2}generation 2 · 2 of 2 replaced\n {4} idle {3}replacing {3}canary\.booting {3}canary\.serving {3}canary\.judging {2}\[done\]/);

    const aborted = { ...done, lastRollout: { generation: 2, outcome: 'aborted' as const, reason: 'worker 4 exited with code 1', kind: 'reload' as const } };
    assert.deepEqual(rolloutDisplay(aborted, view.progress), { state: 'aborted', generation: 2, replaced: 1, total: 2, bootingSlots: [], reason: 'worker 4 exited with code 1' });
  });

  it('plain lines: time, event, transitions, log codes', () => {
    const line = messageLine(
      step(
        midRollout,
        [{ level: 'info', code: 'ZD_WORKER_READY', msg: 'worker 4 ready' }, { level: 'info', code: 'ZD_RELOAD_DONE', msg: 'done' }],
        [
          { machine: 'worker', id: 4, from: 'booting.online', event: 'worker.listening', to: 'listening.fresh' },
          { machine: 'rollout', id: 2, from: 'replacing', event: 'rollout.ready', to: 'done' },
        ],
      ),
    );
    assert.equal(line, '14:03:07.215 worker.listening worker 4: booting.online → listening.fresh, rollout 2: replacing → done [ZD_WORKER_READY ZD_RELOAD_DONE]');
    assert.equal(messageLine({ type: 'hello', name: 'web', app: 'a.js', pid: 7, at: AT }), "14:03:07.215 inspecting 'web' (pid 7, a.js)");
    assert.equal(
      messageLine({ type: 'snapshot', at: AT, status: midRollout }),
      '14:03:07.215 snapshot running, generation 2, 1/2 ready; worker 2: draining, worker 3: listening.fresh, worker 4: booting.online; rollout 2: replacing (1 of 2 replaced)',
    );
  });
});

describe('parseInspectMessage', () => {
  it('accepts what the control server sends and refuses anything else', () => {
    const good: InspectMessage[] = [
      { type: 'hello', name: 'a', app: 'a.js', pid: 1, at: AT },
      { type: 'snapshot', at: AT, status: midRollout },
      { type: 'step', at: AT, event: { type: 'signal.hup' }, transitions: [{ machine: 'rollout', id: 2, from: 'idle', event: 'rollout.start', to: 'replacing' }], logs: [], status: midRollout },
    ];
    for (const message of good) assert.deepEqual(parseInspectMessage(JSON.parse(JSON.stringify(message))), message);
    const bad: unknown[] = [
      null,
      [],
      'step',
      { type: 'hello', name: 'a', app: 'a.js', pid: 1 },
      { type: 'goodbye', at: AT },
      { type: 'snapshot', at: AT, status: { phase: 'running' } },
      { ...good[2], transitions: [{ machine: 'pool', id: 1, from: 'a', event: 'e', to: 'b' }] },
      { ...good[2], logs: [{ code: 1 }] },
      { ...good[2], event: 'signal.hup' },
    ];
    for (const value of bad) assert.equal(parseInspectMessage(value), null, JSON.stringify(value));
  });
});

describe('parseInspectArgs', () => {
  it('reads the four modes', () => {
    assert.deepEqual(parseInspectArgs([]), { mode: 'live', name: undefined, json: false });
    assert.deepEqual(parseInspectArgs(['api', '--json']), { mode: 'live', name: 'api', json: true });
    assert.deepEqual(parseInspectArgs(['--web']), { mode: 'web', name: undefined, port: 0 });
    assert.deepEqual(parseInspectArgs(['--web', '--port', '65535', 'api']), { mode: 'web', name: 'api', port: 65535 });
    assert.deepEqual(parseInspectArgs(['--machine', 'rollout']), { mode: 'machine', machine: 'rollout', format: 'mermaid' });
    assert.deepEqual(parseInspectArgs(['--machine=worker', '--format=svg']), { mode: 'machine', machine: 'worker', format: 'svg' });
  });

  it('refuses the rest with a usage error (exit 2)', () => {
    for (const args of [['--x'], ['--machine', 'toString'], ['--web', '--port', '1e3'], ['--web', '--port', '99999'], ['--json', '--web'], ['--port', '1'], ['a', 'b']]) {
      assert.throws(() => parseInspectArgs(args), (error: { exitCode?: number }) => error.exitCode === 2, args.join(' '));
    }
  });
});

describe('the web page', () => {
  const svg = (machine: string, body: string) =>
    `<?xml version="1.0"?>\n<!DOCTYPE svg>\n<!-- Generated -->\n<svg viewBox="0 0 1 1"><g id="graph0" class="graph">${body}</g></svg>\n`;

  it('inlines both charts with page-unique ids and lets only its own script and style run', () => {
    const workerBody = stateIds(MACHINES.worker).map((id) => `<g id="${id}" class="node"></g>`).join('');
    const page = renderPage({ nonce: 'n0nce', workerSvg: svg('worker', workerBody), rolloutSvg: svg('rollout', '<g id="rollout.idle"></g>') });
    assert.doesNotMatch(page, /<\?xml|<!DOCTYPE svg|id="graph0"/);
    assert.match(page, /<svg viewBox="0 0 1 1"><g id="worker-graph"/);
    assert.match(page, /<g id="rollout-graph"/);
    for (const id of stateIds(MACHINES.worker)) assert.ok(page.includes(`id="${id}"`), id);
    assert.equal(page.match(/<script nonce="n0nce">/g)?.length, 1);
    assert.equal(page.match(/<style nonce="n0nce">/g)?.length, 1);
    assert.equal(page.match(/<script/g)?.length, 1, 'one script, the page’s own');
    assert.doesNotMatch(page, /innerHTML|eval\(/, 'the client never turns data into markup or code');
    assert.throws(() => inlineSvg('not svg', 'worker'), /no <svg>/);
  });
});
