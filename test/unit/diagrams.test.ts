// The diagrams in diagrams/ are generated from the machines (issue #5): they must be current, must
// show every state and transition, and must keep the state ids the inspector highlights by.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { and, not, setup } from 'xstate';
import { toDirectedGraph, getStateNodes } from 'xstate/graph';
import { DRAWN, diagramFiles } from '../../src/diagram/files.ts';
import {
  MACHINES,
  machineToDot,
  machineToMermaid,
  renderSvg,
  stateIds,
} from '../../src/diagram/index.ts';

const diagramsDir = new URL('../../diagrams/', import.meta.url);
// Every machine drawn: the primary's, and the keeper's upgrade machine.
const machines = Object.entries(DRAWN);

interface Edge {
  source: string;
  event: string;
  target: string;
  /** Targetless, guardless and actionless: it only shadows an ancestor's handler. */
  noOp: boolean;
}

function edgesOf(graph: ReturnType<typeof toDirectedGraph>): Edge[] {
  return [
    ...graph.edges.map((edge) => ({
      source: edge.source.id,
      event: edge.label.text,
      target: edge.target.id,
      noOp:
        edge.transition.target === undefined &&
        edge.transition.guard === undefined &&
        edge.transition.actions.length === 0,
    })),
    ...graph.children.flatMap(edgesOf),
  ];
}

const mermaidId = (stateId: string) => stateId.replace(/\./g, '_');

/** Each `<g id=… class=…>…</g>` of an SVG by id. Graphviz does not nest them. */
function svgGroups(svg: string): Map<string, string> {
  const groups = new Map<string, string>();
  for (const match of svg.matchAll(/<g id="([^"]*)" class="[^"]*">[\s\S]*?<\/g>/g)) {
    groups.set(match[1] as string, match[0]);
  }
  return groups;
}

describe('diagrams/', () => {
  it('matches what `npm run diagrams` generates from the machines now', async () => {
    const expected = await diagramFiles();
    for (const [name, content] of expected) {
      let committed: string | undefined;
      try {
        committed = readFileSync(new URL(name, diagramsDir), 'utf8');
      } catch {
        committed = undefined;
      }
      assert.ok(committed !== undefined, `diagrams/${name} is missing: run \`npm run diagrams\``);
      assert.ok(
        committed === content,
        `diagrams/${name} no longer matches the machines: run \`npm run diagrams\``,
      );
    }
    const stray = readdirSync(diagramsDir).filter(
      (name) => /\.(mmd|svg)$/.test(name) && !expected.has(name),
    );
    assert.deepEqual(stray, [], 'diagrams of machines that are gone: run `npm run diagrams`');
  });

  it('generates byte-identical output twice', async () => {
    const first = await diagramFiles();
    const second = await diagramFiles();
    assert.deepEqual([...first], [...second]);
  });
});

for (const [name, machine] of machines) {
  describe(`the ${name} diagram`, () => {
    const ids = stateIds(machine);
    const mermaid = machineToMermaid(machine);
    const dot = machineToDot(machine);
    const edges = edgesOf(toDirectedGraph(machine));

    it('lists every state id in document order, as xstate does', () => {
      assert.deepEqual(
        ids,
        getStateNodes(machine.root).map((node) => node.id),
      );
    });

    it('shows every state, in Mermaid and in DOT', () => {
      for (const id of ids) {
        assert.match(mermaid, new RegExp(`^ *state "[^"]*" as ${mermaidId(id)}( \\{)?$`, 'm'), id);
        assert.ok(dot.includes(`id="${id}"`), `${id} has no DOT id`);
      }
    });

    it('shows every transition with its event, source and target', () => {
      const drawn = edges.filter((edge) => !edge.noOp);
      for (const { source, event, target } of drawn) {
        assert.ok(
          dot.includes(`id="t:${source}:${event}:${target}"`),
          `DOT lacks ${source} --${event}--> ${target}`,
        );
        assert.match(mermaid, new RegExp(`^ *${mermaidId(source)} --> ${mermaidId(target)} : `, 'm'));
      }
      // Nothing drawn that the machine does not have.
      assert.equal(dot.match(/class="transition( targetless)?"/g)?.length ?? 0, drawn.length);
      assert.equal(mermaid.match(/^ *\w+ --> \w+ : /gm)?.length ?? 0, drawn.length);
    });

    it('shows each compound state with its initial child, and ends final states in [*]', () => {
      for (const node of getStateNodes(machine.root)) {
        if (node.type === 'compound') {
          const initial = node.initial.target[0]?.id as string;
          assert.match(mermaid, new RegExp(`^ *\\[\\*\\] --> ${mermaidId(initial)}$`, 'm'));
          assert.ok(dot.includes(`subgraph "cluster_${node.id}"`), `${node.id} is not a cluster`);
        }
        if (node.type === 'final') {
          assert.match(mermaid, new RegExp(`^ *${mermaidId(node.id)} --> \\[\\*\\]$`, 'm'));
        }
      }
    });
  });
}

describe('the worker diagram', () => {
  const mermaid = machineToMermaid(MACHINES.worker);
  const dot = machineToDot(MACHINES.worker);

  it('names delays and guards readably', () => {
    assert.match(mermaid, /worker_booting --> worker_stopping : after readyTimeout$/m);
    assert.match(mermaid, /worker_stopping --> worker_dead_bootFailed : worker\.exit \[bootFailed\]$/m);
    assert.ok(dot.includes('label=" after readyTimeout "'));
    assert.ok(!mermaid.includes('xstate.after'), 'a raw delayed event name leaked into Mermaid');
  });

  it("draws the root's own transitions on an `any state` shape, and leaves out dead's no-op handlers", () => {
    assert.match(mermaid, /^ *state "worker \(any state but dead\)" as worker$/m);
    assert.match(mermaid, /^ *worker --> worker : worker\.forked$/m);
    assert.match(mermaid, /^ *worker --> worker : worker\.disconnect$/m);
    const omitted = edgesOf(toDirectedGraph(MACHINES.worker)).filter((edge) => edge.noOp);
    assert.deepEqual(
      omitted.map((edge) => `${edge.source} ${edge.event}`),
      ['worker.dead worker.forked', 'worker.dead worker.disconnect'],
    );
  });
});

describe('the SVG', () => {
  it("gives each state's group the state id as its id", async () => {
    const svg = await renderSvg(machineToDot(MACHINES.worker));
    assert.ok(svg.includes('<g id="worker.listening.fresh" class="node state atomic">'));
    assert.ok(svg.includes('<g id="worker.booting" class="cluster state compound">'));
    assert.ok(svg.includes('<g id="worker.dead.crashed" class="node state final">'));
    const groups = svgGroups(svg);
    for (const id of stateIds(MACHINES.worker)) assert.ok(groups.has(id), `no <g id="${id}">`);
  });

  for (const id of ['worker.listening.fresh', 'worker.booting']) {
    it(`fills ${id} when highlighted, and nothing else`, async () => {
      const plain = svgGroups(await renderSvg(machineToDot(MACHINES.worker)));
      const lit = svgGroups(
        await renderSvg(machineToDot(MACHINES.worker, { highlight: [id] })),
      );
      assert.deepEqual([...lit.keys()], [...plain.keys()]);
      const changed = [...plain.keys()].filter((key) => plain.get(key) !== lit.get(key));
      assert.deepEqual(changed, [id]);
      const fill = (group: string | undefined) => /<(?:polygon|path) fill="([^"]*)"/.exec(group ?? '')?.[1];
      assert.notEqual(fill(lit.get(id)), fill(plain.get(id)));
      assert.match(lit.get(id) ?? '', /class="[^"]* highlight"/);
    });
  }

  it('refuses to highlight a state the machine does not have', () => {
    assert.throws(
      () => machineToDot(MACHINES.worker, { highlight: ['worker.listening.stale'] }),
      /no such state/,
    );
    // The root is always active; it is accepted whether or not it has a shape.
    assert.doesNotThrow(() => machineToDot(MACHINES.rollout, { highlight: ['rollout'] }));
  });
});

describe('labels', () => {
  it('spells out combined guards and numeric delays', () => {
    const machine = setup({
      guards: { a: () => true, b: () => true },
    }).createMachine({
      id: 'm',
      initial: 'x',
      states: {
        x: {
          after: { 500: 'y' },
          on: { go: { guard: not(and(['a', 'b'])), target: 'y' } },
        },
        y: { always: { guard: 'a', target: 'x' } },
      },
    });
    const mermaid = machineToMermaid(machine);
    assert.match(mermaid, /^ *m_x --> m_y : after 500ms$/m);
    assert.match(mermaid, /^ *m_x --> m_y : go \[!\(a && b\)\]$/m);
    assert.match(mermaid, /^ *m_y --> m_x : always \[a\]$/m);
  });
});
