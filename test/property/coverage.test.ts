// Issue #3: every state and every declared transition of the worker and rollout machines is
// taken by the reducer in the property suite's interleavings. xstate/graph enumerates what the
// machines declare; the reducer reports every transition it takes (Step.transitions).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { toDirectedGraph } from 'xstate/graph';
import type { AnyStateMachine } from 'xstate';
import { rolloutMachine } from '../../machines/rollout.machine.ts';
import { workerMachine } from '../../machines/worker.machine.ts';
import type { MachineTransition } from '../../src/core/reduce.ts';
import { assertProperty, commandsArb, configArb, runScenario } from './model.ts';

interface Edge {
  source: string;
  event: string;
  target: string;
}

function declaredEdges(machine: AnyStateMachine): Edge[] {
  type Node = { edges: Array<{ source: { id: string }; target: { id: string }; label: { text: string } }>; children: Node[] };
  const walk = (node: Node): Node[] => [node, ...node.children.flatMap(walk)];
  return walk(toDirectedGraph(machine) as unknown as Node).flatMap((node) =>
    node.edges.map((e) => ({ source: e.source.id, event: e.label.text, target: e.target.id })),
  );
}

const within = (stateId: string, nodeId: string) => stateId === nodeId || stateId.startsWith(`${nodeId}.`);

function covers(edge: Edge, t: MachineTransition): boolean {
  const from = `${t.machine}.${t.from}`;
  const to = `${t.machine}.${t.to}`;
  return t.event === edge.event && within(from, edge.source) && within(to, edge.target);
}

// Reachable only by driving the machines directly (their unit tests do):
// - the reducer never hands an event to a dead worker (it drops late news first), so the dead
//   state's shadowing handlers are for the machine alone ("a dead worker is terminal");
// - the reducer always has N ≥ 1 slots, so it never starts an empty rollout, which the machine
//   still finishes at once instead of hanging.
const ONLY_IN_UNIT_TESTS = new Set([
  'worker.dead worker.forked',
  'worker.dead worker.disconnect',
  'rollout.idle rollout.start -> rollout.done',
]);

test('every declared transition of both machines is taken by the reducer (fixed seed, 5000 sequences)', () => {
  const seen: MachineTransition[] = [];
  assertProperty(
    fc.property(configArb, commandsArb, (config, commands) => {
      seen.push(...runScenario(config, commands).transitions);
    }),
    { numRuns: 5000, seed: 20261121 },
  );
  const missing: string[] = [];
  for (const [name, machine] of [['worker', workerMachine], ['rollout', rolloutMachine]] as const) {
    const taken = seen.filter((t) => t.machine === name);
    for (const edge of declaredEdges(machine)) {
      if (ONLY_IN_UNIT_TESTS.has(`${edge.source} ${edge.event}`)) continue;
      if (ONLY_IN_UNIT_TESTS.has(`${edge.source} ${edge.event} -> ${edge.target}`)) continue;
      if (!taken.some((t) => covers(edge, t))) missing.push(`${edge.source} --${edge.event}--> ${edge.target}`);
    }
  }
  assert.deepEqual(missing, [], `transitions never taken:\n${missing.join('\n')}`);
});
