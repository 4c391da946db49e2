// Sizes as people write them: `512M`, `1G`, `800MB`; a bare number is bytes (binary units).

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, KB: 1024, M: 1024 ** 2, MB: 1024 ** 2, G: 1024 ** 3, GB: 1024 ** 3 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*([KMG]?B?)$/i;

/** Bytes, or null when the text is not a size. */
export function parseSize(text: string): number | null {
  const match = PATTERN.exec(text.trim());
  if (!match) return null;
  const bytes = Math.round(Number(match[1]) * UNITS[match[2]!.toUpperCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}G`;
  if (bytes >= 1024 ** 2) return `${Math.round(bytes / 1024 ** 2)}M`;
  return `${bytes}B`;
}
