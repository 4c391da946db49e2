// A log effect as the line's fields: shared by the runtime and `zd replay`, so that a replayed line
// is the live one.
import type { LogEffect } from '../core/effects.ts';
import type { WorkerId } from '../core/events.ts';

export function logFields(effect: LogEffect, stderrTail: (workerId: WorkerId) => string | undefined): Record<string, unknown> {
  // The stable code goes last: no field may overwrite it.
  const fields: Record<string, unknown> = { ...effect.fields, code: effect.code };
  if (effect.stderrOf !== undefined) fields.stderr = stderrTail(effect.stderrOf) ?? '';
  return fields;
}
