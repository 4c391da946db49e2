// A load window's failed requests by kind, and when they happened: what bench/sockets.mjs and
// bench/sched.mjs report of a load through an upgrade, a reload or a scale.

/**
 * A load window's failed requests, by kind, counted as lib/report.mjs's failures() counts them (as
 * a compliant client would), and autocannon's artifacts apart: a request it wrote on a connection
 * after the server's `Connection: close`, then lost or reset. Only the kinds that happened.
 */
export function failureKinds(window) {
  const out = {};
  const add = (key, n) => {
    if (n) out[key] = n;
  };
  add('non-2xx', window.non2xx);
  const artifactResets = window.connErrorsAfterConnClose ?? 0;
  for (const [code, n] of Object.entries(window.reqErrors ?? {})) add(`error ${code}`, n);
  add('lost when the server closed the connection', (window.droppedOnClose ?? 0) - (window.droppedOnCloseAfterConnClose ?? 0));
  const artifacts = {};
  if (window.droppedOnCloseAfterConnClose) artifacts['lost after Connection: close'] = window.droppedOnCloseAfterConnClose;
  if (artifactResets) artifacts['reset after Connection: close (within the errors above)'] = artifactResets;
  return { failed: out, artifacts };
}

/** errorTimes as a few words: each kind's count and when, bursts within a second together ("50 lost … at 3.42–3.44 s"). */
export function whenFailed(errorTimes) {
  const bursts = [];
  for (const e of [...errorTimes].sort((a, b) => a.ms - b.ms)) {
    const last = bursts.findLast((b) => b.code === e.code && e.ms - b.to < 1000);
    if (last) {
      last.to = e.ms;
      last.n += e.n ?? 1;
    } else bursts.push({ code: e.code, from: e.ms, to: e.ms, n: e.n ?? 1 });
  }
  const s = (ms) => (ms / 1000).toFixed(2);
  return bursts.map((b) => `${b.n}× ${b.code} at ${s(b.from)}${b.to > b.from ? `–${s(b.to)}` : ''} s`).join('; ');
}
