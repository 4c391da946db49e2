// The benchmarks' numeric flags: bad input is one line naming the flag and its range, and exit 2.

/** whole(flag, text, min, max) for the script `prog`: the number, or the script exits 2. */
export function wholeFlag(prog) {
  return (name, text, min, max) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      process.stderr.write(`${prog}: --${name} takes a whole number from ${min} to ${max}, not '${text}'\n`);
      process.exit(2);
    }
    return n;
  };
}
