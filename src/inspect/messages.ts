// What `{"cmd":"inspect"}` streams, as the inspector reads it: a hello, a snapshot, then one step
// per reducer step. Checked at the edge, so a newer or broken primary is a clear error and never a
// crash deep in a renderer.
import type { Effect } from '../core/effects.ts';
import type { MachineTransition } from '../core/reduce.ts';
import type { StatusView } from '../core/status.ts';

export interface HelloMessage {
  type: 'hello';
  name: string;
  app: string;
  pid: number;
  at: number;
}

export interface SnapshotMessage {
  type: 'snapshot';
  at: number;
  status: StatusView;
}

export interface StepLog {
  level: string;
  code: string;
  msg: string;
}

/**
 * A step's log lines as a live view and a replay show them: those zd prints at its default level
 * (a debug line, such as the routing's ZD_ROUTE, is in the journal and `zd replay --json`).
 */
export function stepLogs(effects: readonly Effect[]): StepLog[] {
  return effects.flatMap((e) => (e.type === 'log' && e.level !== 'debug' ? [{ level: e.level, code: e.code, msg: e.msg }] : []));
}

export interface StepMessage {
  type: 'step';
  at: number;
  /** The event the reducer took; only its `type` is relied on. */
  event: { type: string; [field: string]: unknown };
  transitions: MachineTransition[];
  logs: StepLog[];
  status: StatusView;
}

export type InspectMessage = HelloMessage | SnapshotMessage | StepMessage;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isStatus(v: unknown): v is StatusView {
  return (
    isObject(v) &&
    typeof v.phase === 'string' &&
    typeof v.generation === 'number' &&
    Array.isArray(v.workers) &&
    v.workers.every((w) => isObject(w) && typeof w.id === 'number' && typeof w.state === 'string') &&
    (v.rollout === null || (isObject(v.rollout) && typeof v.rollout.state === 'string'))
  );
}

function isTransition(v: unknown): v is MachineTransition {
  return (
    isObject(v) &&
    (v.machine === 'worker' || v.machine === 'rollout') &&
    typeof v.id === 'number' &&
    typeof v.from === 'string' &&
    typeof v.to === 'string' &&
    typeof v.event === 'string'
  );
}

function isLog(v: unknown): v is StepLog {
  return isObject(v) && typeof v.code === 'string' && typeof v.msg === 'string';
}

/** The message, or `null` when the value is not one the inspector understands. */
export function parseInspectMessage(value: unknown): InspectMessage | null {
  if (!isObject(value) || typeof value.at !== 'number') return null;
  switch (value.type) {
    case 'hello':
      return typeof value.name === 'string' && typeof value.pid === 'number' && typeof value.app === 'string'
        ? (value as unknown as HelloMessage)
        : null;
    case 'snapshot':
      return isStatus(value.status) ? (value as unknown as SnapshotMessage) : null;
    case 'step':
      return isObject(value.event) &&
        typeof value.event.type === 'string' &&
        Array.isArray(value.transitions) &&
        value.transitions.every(isTransition) &&
        Array.isArray(value.logs) &&
        value.logs.every(isLog) &&
        isStatus(value.status)
        ? (value as unknown as StepMessage)
        : null;
    default:
      return null;
  }
}
