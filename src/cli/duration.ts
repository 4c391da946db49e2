// Durations as people write them: `500ms`, `5s`, `2m`; a bare number is milliseconds.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
/** setTimeout's ceiling (about 24.8 days); a longer delay would fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const match = PATTERN.exec(text.trim());
  if (!match) return null;
  const ms = Math.round(Number(match[1]) * UNITS[match[2] ?? 'ms']!);
  return Number.isFinite(ms) && ms <= MAX_DURATION_MS ? ms : null;
}

export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
