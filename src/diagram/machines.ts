// The machines zd draws, by the name `zd inspect --machine` and `npm run diagrams` use.
import { rolloutMachine } from '../../machines/rollout.machine.ts';
import { workerMachine } from '../../machines/worker.machine.ts';

export const MACHINES = { worker: workerMachine, rollout: rolloutMachine } as const;
export type MachineName = keyof typeof MACHINES;
