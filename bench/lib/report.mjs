// Turns the raw runs into bench/RESULTS.md: the summary table, the issue's targets as measured
// ratios, and every repetition's numbers.

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);
const fmt = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(digits));
const mb = (kb) => (kb === null || kb === undefined ? null : kb / 1024);
const ratio = (a, b) => (a === null || b === null || b === 0 ? null : a / b);

const LABEL = {
  single: '`single` (one process, no runner)',
  'seed-cluster': '`seed-cluster` (hand-written node:cluster)',
  zd: '`zd` (built, `dist/zd.cjs`)',
  'zd-source': '`zd` from source (tsx, no build)',
  pm2: '`pm2` (cluster mode, `-i 2`)',
};

/**
 * Failed requests of one reload run, as a client would count them.
 * keep-alive: autocannon's errors (which include its timeouts) + non-2xx + requests lost on a
 * connection the server closed without answering (autocannon reconnects silently and counts
 * nothing), minus what autocannon brought on itself by writing a request on a connection after the
 * server's `Connection: close` (a compliant client, like Node's http.Agent or undici, would not).
 */
export function failures(load) {
  if (!load) return null;
  if (load.mode === 'per-connection') return { failed: load.errors + load.non2xx, artifacts: 0, lostUncounted: 0 };
  const lostUncounted = load.droppedOnClose - load.droppedOnCloseAfterConnClose;
  const artifacts = load.droppedOnCloseAfterConnClose + load.connErrorsAfterConnClose;
  return { failed: load.errors - load.connErrorsAfterConnClose + load.non2xx + lostUncounted, artifacts, lostUncounted };
}

export function report({ context, steady, reload }) {
  const ok = (runs) => runs.filter((r) => !r.error);
  const steadyOf = (name) => ok(steady.filter((r) => r.name === name));
  const reloadOf = (name, mode) => reload.filter((r) => r.name === name && r.mode === mode);

  const steadyRps = (name) => median(steadyOf(name).map((r) => r.load.rps));
  const steadyRange = (name) => {
    const v = steadyOf(name).map((r) => r.load.rps);
    return v.length > 1 ? ` (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})` : '';
  };
  const cpuPer1k = (name) => median(steadyOf(name).map((r) => r.cpuMsPer1kReq));
  const rss = (name) => median(steadyOf(name).map((r) => mb(r.rss.primaryKb)));
  const reloadMs = (name, mode) => median(ok(reloadOf(name, mode)).map((r) => r.reloadMs));
  const oldGoneMs = (name, mode) => median(ok(reloadOf(name, mode)).map((r) => r.oldGoneMs));
  // A reload is the replacements' boots (fork → listening, the app's and the machine's time) plus
  // what the runner itself adds between them.
  const bootSum = (r) => (r.reload.bootsMs?.length ? r.reload.bootsMs.reduce((a, b) => a + (b ?? NaN), 0) : null);
  const bootsMs = (name, mode) => median(ok(reloadOf(name, mode)).map(bootSum));
  const ownMs = (name, mode) => median(ok(reloadOf(name, mode)).map((r) => (bootSum(r) === null || r.reloadMs === null ? null : r.reloadMs - bootSum(r))));
  const failedList = (name, mode) => reloadOf(name, mode).map((r) => (r.error ? 'run failed' : failures(r.load).failed));
  const failedTotal = (name, mode) => sum(ok(reloadOf(name, mode)).map((r) => failures(r.load).failed));
  const duringPct = (name, mode) => median(ok(reloadOf(name, mode)).map((r) => (r.rpsBefore ? (100 * r.rpsDuring) / r.rpsBefore : null)));

  const hasSteady = steady.length > 0;
  const hasReload = reload.length > 0;
  const p = context.params;

  // ---- summary table
  const rows = [];
  rows.push('| runner | steady req/s, median (min–max) | CPU-ms per 1k requests | primary / daemon RSS, MB | reload time, ms (keep-alive · new conn) | failed requests per run, keep-alive | failed requests per run, new conn per request | req/s during reload, % of the second before |');
  rows.push('|---|---:|---:|---:|---:|---|---|---:|');
  for (const name of ['single', 'seed-cluster', 'zd', 'zd-source', 'pm2']) {
    if (!steady.some((r) => r.name === name) && !reload.some((r) => r.name === name)) continue;
    const reloadable = name === 'seed-cluster' || name === 'zd' || name === 'pm2';
    const rssCell = name === 'single' ? `(app: ${fmt(rss(name), 1)})` : fmt(rss(name), 1);
    rows.push(
      `| ${LABEL[name]} | ${name === 'zd-source' ? `(${fmt(steadyRps(name))}, 1 run)` : `${fmt(steadyRps(name))}${steadyRange(name)}`} | ${fmt(cpuPer1k(name), 1)} | ${rssCell} | ${
        reloadable && hasReload ? `${fmt(reloadMs(name, 'keepalive'))} · ${fmt(reloadMs(name, 'per-connection'))}` : '–'
      } | ${reloadable && hasReload ? failedList(name, 'keepalive').join(', ') : '–'} | ${reloadable && hasReload ? failedList(name, 'per-connection').join(', ') : '–'} | ${
        reloadable && hasReload ? `${fmt(duringPct(name, 'keepalive'))} · ${fmt(duringPct(name, 'per-connection'))}` : '–'
      } |`,
    );
  }
  const summary = rows.join('\n');

  // ---- targets
  const targets = [];
  targets.push('| target (issue #4) | measured | met? |');
  targets.push('|---|---|---|');
  if (hasReload) {
    const z = [failedTotal('zd', 'keepalive'), failedTotal('zd', 'per-connection')];
    const s = [failedTotal('seed-cluster', 'keepalive'), failedTotal('seed-cluster', 'per-connection')];
    const m = [failedTotal('pm2', 'keepalive'), failedTotal('pm2', 'per-connection')];
    const zdRuns = reload.filter((r) => r.name === 'zd');
    const zdClean = z[0] === 0 && z[1] === 0 && zdRuns.every((r) => !r.error && r.reload.outcome === 'done');
    targets.push(
      `| zd fails 0 requests during a reload where the others fail some | failed requests summed over all reps (keep-alive / new conn): zd ${z[0]} / ${z[1]}, seed-cluster ${s[0]} / ${s[1]}, pm2 ${m[0]} / ${m[1]} | ${zdClean ? (s[0] + s[1] > 0 && m[0] + m[1] > 0 ? 'yes' : 'zd: yes; but not every other runner failed some') : '**no**'} |`,
    );
    for (const mode of ['keepalive', 'per-connection']) {
      const r = ratio(reloadMs('zd', mode), reloadMs('seed-cluster', mode));
      targets.push(
        `| zd reload time ≤ 1.1 × seed-cluster's (${mode === 'keepalive' ? 'keep-alive load' : 'new-connection load'}) | ${fmt(reloadMs('zd', mode))} ms / ${fmt(reloadMs('seed-cluster', mode))} ms = **${fmt(r, 2)} ×** (medians). Split into the replacements' boots (fork → listening, summed) + the runner's own time: zd ${fmt(bootsMs('zd', mode))} + ${fmt(ownMs('zd', mode))} ms, seed-cluster ${fmt(bootsMs('seed-cluster', mode))} + ${fmt(ownMs('seed-cluster', mode))} ms (medians) | ${r === null ? '–' : r <= 1.1 ? 'yes' : '**no**'} |`,
      );
    }
  }
  if (hasSteady) {
    const r = ratio(steadyRps('zd'), steadyRps('seed-cluster'));
    targets.push(
      `| zd steady throughput ≥ 0.97 × seed-cluster's | ${fmt(steadyRps('zd'))} / ${fmt(steadyRps('seed-cluster'))} req/s = **${fmt(r, 3)} ×** (medians; per-rep ranges: zd${steadyRange('zd')}, seed-cluster${steadyRange('seed-cluster')}) | ${r === null ? '–' : r >= 0.97 ? 'yes' : '**no**'} |`,
    );
    const c = ratio(cpuPer1k('seed-cluster'), cpuPer1k('zd'));
    targets.push(
      `| (the same, as CPU cost: seed-cluster's CPU per request ÷ zd's, ≥ 0.97) | ${fmt(cpuPer1k('seed-cluster'), 1)} / ${fmt(cpuPer1k('zd'), 1)} CPU-ms per 1k requests = **${fmt(c, 3)} ×** (medians, all of the runner's processes) | ${c === null ? '–' : c >= 0.97 ? 'yes' : '**no**'} |`,
    );
    const zr = ratio(rss('zd'), rss('pm2'));
    const sr = ratio(rss('zd-source'), rss('pm2'));
    targets.push(
      `| zd primary RSS below PM2's daemon | built: ${fmt(rss('zd'), 1)} MB / ${fmt(rss('pm2'), 1)} MB = **${fmt(zr, 2)} ×**; from source (tsx): ${fmt(rss('zd-source'), 1)} MB = ${fmt(sr, 2)} × | ${zr === null ? '–' : zr < 1 ? 'yes (built)' : '**no** (built)'}${sr === null ? '' : sr < 1 ? ', yes (source)' : ', **no** (source)'} |`,
    );
  }

  // ---- raw tables
  const raw = [];
  if (hasSteady) {
    raw.push('### Steady state, every repetition');
    raw.push('');
    raw.push(`autocannon, ${p.connections} connections, keep-alive, pipelining 1, ${p.steadyMs / 1000} s after a ${p.steadyWarmupMs / 1000} s warm-up. RSS read from \`/proc/<pid>/status\` (VmRSS) at 80 % of the window. *CPU-ms per 1k req*: utime + stime (\`/proc/<pid>/stat\`) of the primary (or PM2's daemon) and its workers over the window, per 1,000 responses; on two cores shared with the load generator, req/s swings with how the scheduler places four busy processes from one run to the next; CPU per request varies much less (it still rises when other work shares the cores).`);
    raw.push('');
    raw.push('| runner | rep | req/s | responses | CPU-ms per 1k req (primary CPU-ms) | errors | non-2xx | p50 / p99 / max latency, ms | primary RSS, MB | workers RSS, MB | other CPU-s |');
    raw.push('|---|---:|---:|---:|---|---:|---:|---|---:|---|---:|');
    for (const r of steady) {
      if (r.error) {
        raw.push(`| ${r.name} | ${r.rep} | run failed: ${oneLine(r.error)} | | | | | | | | |`);
        continue;
      }
      raw.push(
        `| ${r.name} | ${r.rep} | ${fmt(r.load.rps)} | ${r.load.responses} | ${fmt(r.cpuMsPer1kReq, 2)} (${fmt(r.cpu.primaryMs)}) | ${r.load.errors} | ${r.load.non2xx} | ${r.load.latencyP50} / ${r.load.latencyP99} / ${r.load.latencyMax} | ${fmt(mb(r.rss.primaryKb), 1)} | ${r.rss.workersKb.map((kb) => fmt(mb(kb), 1)).join(', ') || '–'} | ${fmt(r.otherCpuS, 1)} |`,
      );
    }
    raw.push('');
  }
  if (hasReload) {
    for (const mode of ['keepalive', 'per-connection']) {
      raw.push(mode === 'keepalive' ? '### Reload under keep-alive load, every repetition' : '### Reload under new-connection-per-request load, every repetition');
      raw.push('');
      raw.push(
        mode === 'keepalive'
          ? `autocannon, ${p.connections} connections, keep-alive, pipelining 1, ${p.reloadMs / 1000} s; the reload is triggered ${p.triggerAtMs / 1000} s in. *lost* = requests on a connection the server closed without answering: autocannon reconnects silently and counts them nowhere. *artifact* = lost or reset after the server had answered \`Connection: close\` on that connection (autocannon ignores that header and writes its next request anyway; a compliant client would not). *failed* = errors − artifact resets + non-2xx + lost − artifact losses.`
          : `${p.perConnectionLoops} concurrent loops of \`http.get({ agent: false })\` (a new connection per request), ${p.reloadMs / 1000} s; the reload is triggered ${p.triggerAtMs / 1000} s in. *failed* = errors + non-2xx.`,
      );
      raw.push('');
      raw.push(
        mode === 'keepalive'
          ? '| runner | rep | reload, ms | replacements fork → listening, ms | old workers gone, ms | responses | req/s | req/s before → during reload | errors (timeouts) | non-2xx | lost | artifact | **failed** | error codes | other CPU-s |'
          : '| runner | rep | reload, ms | replacements fork → listening, ms | old workers gone, ms | responses | req/s | req/s before → during reload | errors (timeouts) | non-2xx | **failed** | error codes | other CPU-s |',
      );
      raw.push(mode === 'keepalive' ? '|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|' : '|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|');
      for (const r of reload.filter((x) => x.mode === mode)) {
        if (r.error) {
          raw.push(`| ${r.name} | ${r.rep} | run failed: ${oneLine(r.error)} |${' |'.repeat(mode === 'keepalive' ? 12 : 10)}`);
          continue;
        }
        const l = r.load;
        const f = failures(l);
        const reloadCell = r.reload.outcome === 'done' ? fmt(r.reloadMs) : `${r.reload.outcome}`;
        const codes = Object.entries({ ...l.reqErrors }).map(([k, v]) => `${k}×${v}`).join(' ') || '–';
        const bootsCell = r.reload.bootsMs ? r.reload.bootsMs.map((ms) => fmt(ms)).join(', ') : '–';
        const common = `| ${r.name} | ${r.rep} | ${reloadCell} | ${bootsCell} | ${fmt(r.oldGoneMs)} | ${l.responses} | ${fmt(l.rps)} | ${fmt(r.rpsBefore)} → ${fmt(r.rpsDuring)} | ${l.errors} (${l.timeouts}) | ${l.non2xx} |`;
        const other = `${fmt(r.otherCpuS, 1)} |`;
        raw.push(mode === 'keepalive' ? `${common} ${l.droppedOnClose} | ${f.artifacts} | **${f.failed}** | ${codes} | ${other}` : `${common} **${f.failed}** | ${codes} | ${other}`);
      }
      raw.push('');
    }
  }

  // ---- what the runners said
  const notes = [];
  const problems = [...steady, ...reload].filter((r) => r.problems?.length > 0);
  for (const r of problems) notes.push(`- ${r.name} ${r.mode ?? 'steady'} rep ${r.rep}: ${r.problems.length} line(s): \`${r.problems.slice(0, 3).map(oneLine).join('` `')}\``);
  const aborted = reload.filter((r) => !r.error && r.reload.outcome !== 'done');
  for (const r of aborted) notes.push(`- ${r.name} ${r.mode} rep ${r.rep}: reload outcome \`${r.reload.outcome}\` ${r.reload.detail ? `\`${oneLine(r.reload.detail)}\`` : ''}`);
  const forced = [...steady, ...reload].filter((r) => r.stop && (r.stop.forced || r.stop.leftovers?.length));
  for (const r of forced) notes.push(`- ${r.name} ${r.mode ?? 'steady'} rep ${r.rep}: stop was forced (SIGKILL) or left workers behind: ${JSON.stringify(r.stop)}`);
  const stopCodes = [...steady, ...reload].filter((r) => r.stop && r.name !== 'pm2' && r.name !== 'single' && r.stop.code !== 0);
  for (const r of stopCodes) notes.push(`- ${r.name} ${r.mode ?? 'steady'} rep ${r.rep}: exited ${r.stop.code ?? r.stop.signal} on SIGTERM`);
  const lingered = reload.filter((r) => !r.error && r.oldGoneMs !== null && r.reloadMs !== null && r.oldGoneMs - r.reloadMs > 1000);
  for (const r of lingered) {
    notes.push(`- ${r.name} ${r.mode} rep ${r.rep}: an old worker exited only ${fmt(r.oldGoneMs - r.reloadMs)} ms after the reload was done (at ${fmt(r.oldGoneMs)} ms; the load window ended ${fmt(p.reloadMs - p.triggerAtMs)} ms after the trigger): it kept serving the old code on a kept-alive connection meanwhile.`);
  }
  const failedRuns = [...steady, ...reload].filter((r) => r.error);
  for (const r of failedRuns) notes.push(`- ${r.name} ${r.mode ?? 'steady'} rep ${r.rep}: **run failed**: \`${oneLine(r.error)}\``);
  const pings = [...steady, ...reload].map((r) => r.pm2PingMs).filter((x) => x !== undefined);

  const f = context.facts;
  const md = `# zd benchmark results

Generated by \`bench/run.mjs\`; do not edit by hand, rerun instead.

\`\`\`sh
${context.command}
\`\`\`

- **Date:** ${context.date} (the whole run took ${context.elapsedS} s)
- **Machine:** \`nproc\` = ${f.nproc}, ${f.cpu}, ${f.memGiB} GiB RAM, Linux ${f.kernel}; \`node -v\` = ${f.node}
- **Tools:** autocannon ${f.autocannon}, pm2 ${f.pm2} (from \`bench/package-lock.json\`)
- **zd:** commit ${f.commit}${f.dirty ? `, with uncommitted changes in: ${f.dirty.split('\n').map((l) => `\`${l.trim()}\``).join(', ')}` : ''}. **Built** with \`npm run build\` before the runs (${context.builds.length} build(s): ${context.builds.map((b) => `${b.reason}, ${b.ms} ms`).join('; ')}), so \`bin/zd.js\` ran the bundle \`dist/zd.cjs\`, as a published package does. The \`zd-source\` row is the same CLI from its TypeScript source through tsx (what \`bin/zd.js\` falls back to without a fresh build), measured once for its RSS.
- **Load on the machine before the run:** CPU ${context.cpuBusyBefore} % busy over 2 s, load average ${context.loadavgBefore}; \`ps aux | grep -c node\` before / after: ${context.nodeProcsBefore} / ${context.nodeProcsAfter}. Load generator and servers share the same ${f.nproc} cores.
- **Other work during the measured windows:** processes outside the benchmark used ${fmt(sum([...steady, ...reload].map((r) => r.otherCpuS)), 1)} CPU-seconds in total (a lower bound, read from \`/proc\`; column *other CPU-s* per run); ${[...steady, ...reload].filter((r) => r.otherCpuS > 1).length} of ${steady.length + reload.length} runs had more than 1 CPU-second of it.
- **Leftover processes after the run:** ${context.leftovers.length === 0 ? 'none' : context.leftovers.join('; ')}

## Summary

Each runner serves \`bench/apps/app.cjs\` (plain \`node:http\`, a ~100-byte JSON answer) with ${p.workers} workers on 127.0.0.1. Medians over ${p.steadyReps} steady-state and ${p.reloadReps} reload repetitions per configuration; the failed-request columns list every repetition.

${summary}

- *reload time*: from the trigger to the runner saying the new generation serves: zd's \`ZD_RELOAD_DONE\` log line, the seed's \`{"event":"reload-done"}\` line (both: the last replacement is listening; the old worker is still draining), or the \`pm2 reload\` command returning (which includes starting the pm2 CLI, ${pings.length ? `median \`pm2 ping\` round trip ${fmt(median(pings))} ms` : 'not measured'}, and waiting for the old instances to stop). The raw tables also give the time until the old workers had exited.
- *failed requests*: what a client saw fail: see the keep-alive table's notes for how autocannon's counters were completed.

## Targets

${targets.join('\n')}

## Every repetition

${raw.join('\n')}
## What the runners logged

zd's own warn/error lines (pino level ≥ 40), seed-cluster's unplanned worker exits, aborted or timed-out reloads, old workers that outlived the reload by more than a second, forced stops:

${notes.length ? notes.join('\n') : '- nothing: no warning or error line, every reload completed, every runner stopped cleanly on its own.'}${notes.length && !failedRuns.length && !forced.length ? '\n- otherwise nothing: every run completed, every runner stopped cleanly on its own.' : ''}

## Parameters

\`\`\`json
${JSON.stringify(p, null, 1)}
\`\`\`

Raw data, including per-second samples: \`bench/RESULTS.json\`.
`;
  return { markdown: md, summary };
}

function oneLine(text) {
  return String(text).split('\n')[0].replaceAll('|', '\\|').replaceAll('`', "'").slice(0, 300);
}
