// `zd inspect` when stdout is not a terminal: one plain line per message, for logs and grep.
// `14:03:07.215 worker.listening worker 3: booting.online → listening.fresh, rollout 2: replacing → replacing [ZD_WORKER_READY]`
import type { MachineTransition } from '../core/reduce.ts';
import type { StatusView } from '../core/status.ts';
import type { InspectMessage } from './messages.ts';
import { clock } from './view.ts';

export function messageLine(message: InspectMessage): string {
  const time = clock(message.at);
  switch (message.type) {
    case 'hello':
      return `${time} inspecting '${message.name}' (pid ${message.pid}, ${message.app})`;
    case 'snapshot':
      return `${time} snapshot ${statusSummary(message.status)}`;
    case 'step': {
      const parts = [time, message.event.type];
      if (message.transitions.length > 0) parts.push(message.transitions.map(transitionText).join(', '));
      if (message.logs.length > 0) parts.push(`[${message.logs.map((log) => log.code).join(' ')}]`);
      return parts.join(' ');
    }
  }
}

export function transitionText(t: MachineTransition): string {
  return `${t.machine} ${t.id}: ${t.from} → ${t.to}`;
}

function statusSummary(s: StatusView): string {
  const workers = s.workers.map((w) => `worker ${w.id}: ${w.state}`).join(', ');
  const rollout = s.rollout
    ? `rollout ${s.rollout.generation}: ${s.rollout.state} (${s.rollout.replaced} of ${s.rollout.total} replaced)`
    : 'no rollout';
  return `${s.phase}, generation ${s.generation}, ${s.ready}/${s.desired} ready; ${workers || 'no workers'}; ${rollout}`;
}
