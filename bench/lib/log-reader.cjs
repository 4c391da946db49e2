// bench/logs.mjs's reader: zd's (or the cluster's) stdout, read as a log shipper would, until
// EXPECT bytes have come. Counts bytes and lines; with --check, also parses every line and checks
// each worker's lines come in order: a line that does not parse, or is out of place, is corrupted.
// Prints one JSON result on stdout and exits.
//   node bench/lib/log-reader.cjs EXPECT [--check]
'use strict';
const expect = Number(process.argv[2]);
const check = process.argv.includes('--check');
let bytes = 0;
let lines = 0;
let corrupted = 0;
let firstMs = 0;
let partial = '';
const next = new Map();

function checkLine(line) {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    corrupted++;
    return;
  }
  const i = value.i - 10_000_000;
  if (i !== (next.get(value.w) ?? 0)) corrupted++;
  next.set(value.w, i + 1);
}

process.stdin.on('data', (chunk) => {
  if (firstMs === 0) firstMs = Date.now();
  bytes += chunk.length;
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
  if (check) {
    const parts = (partial + chunk.toString('latin1')).split('\n');
    partial = parts.pop();
    for (const line of parts) checkLine(line);
  }
  if (bytes >= expect) {
    process.stdout.write(`${JSON.stringify({ bytes, lines, corrupted: check ? corrupted : null, firstMs, lastMs: Date.now() })}\n`);
    process.exit(0);
  }
});
