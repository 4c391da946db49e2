// Issue #10, compatibility: node:http2, cleartext (h2c) and TLS. An HTTP/2 client keeps one
// session and multiplexes its requests on it, so draining must say GOAWAY: streams in flight
// finish, and the client opens its next session on a new worker. The clients here retry a stream
// the server refused (REFUSED_STREAM, or a request on a session already going away) on a new
// session, as HTTP/2 clients do; any other failure counts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { compatApp, compatCleanup, runScenario, track, type Identity, type Load, type Outcome, type Tally } from './harness.ts';

afterEach(compatCleanup);

/** A fresh self-signed pair for 127.0.0.1 if openssl is installed; else the test-only pair shipped. */
function tlsPair(): { key: string; cert: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'zd-compat-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: 'ignore', timeout: 10_000 },
  );
  const remove = () => rmSync(dir, { recursive: true, force: true });
  if (made.status === 0) return { key, cert, remove };
  return { key: compatApp('tls/key.pem'), cert: compatApp('tls/cert.pem'), remove };
}

type Retryable = Error & { retry?: boolean };

/** One GET / on a session: its body, or an error marked `retry` when the server never took it. */
function request(session: ClientHttp2Session): Promise<string> {
  return new Promise((resolve, reject) => {
    let stream;
    try {
      stream = session.request({ ':path': '/' });
    } catch (error) {
      // A session already going away or gone refuses new streams before anything is sent.
      const code = (error as NodeJS.ErrnoException).code;
      reject(Object.assign(error as Error, { retry: code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' }));
      return;
    }
    let status = 0;
    let body = '';
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      reject(Object.assign(error, { retry: stream.rstCode === constants.NGHTTP2_REFUSED_STREAM }));
    };
    stream.setTimeout(5000, () => {
      fail(Object.assign(new Error('no answer within 5000ms'), { code: 'ETIMEOUT' }));
      stream.close(constants.NGHTTP2_CANCEL);
    });
    stream.setEncoding('utf8');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      if (settled) return;
      settled = true;
      if (status === 200) resolve(body);
      else reject(new Error(status === 0 ? `stream ended without a response (rstCode ${stream.rstCode})` : `HTTP ${status}: ${body.slice(0, 120)}`));
    });
    stream.on('error', fail);
    stream.on('close', () => fail(Object.assign(new Error(`stream closed without an answer (rstCode ${stream.rstCode})`), { code: 'ESTREAMCLOSED' })));
  });
}

/**
 * HTTP/2 load: `sessions` clients that each keep one session (reopened when it goes away) with
 * two requests at a time on it, and `fresh` loops that open a new session per request.
 */
function h2Load(authority: string, options: SecureClientSessionOptions, tally: Tally, { sessions = 4, fresh = 2, maxMs = 30_000 } = {}): Load {
  const started = Date.now();
  let stopped = false;
  const on = () => !stopped && Date.now() - started < maxMs;
  const open = new Set<ClientHttp2Session>();
  const newSession = () => {
    const session = connect(authority, options);
    session.on('error', () => {}); // each stream reports its own failure
    session.on('goaway', () => tally.note('h2', 'GOAWAY'));
    open.add(session);
    session.once('close', () => open.delete(session));
    return session;
  };

  /** One answer, retrying up to twice a stream the server never took, as HTTP/2 clients do. */
  const ask = async (via: string, session: () => ClientHttp2Session) => {
    const sentAt = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        tally.answer(via, sentAt, await request(session()));
        return;
      } catch (error) {
        if ((error as Retryable).retry && attempt < 3) continue;
        tally.fail(via, error);
        return;
      }
    }
  };
  const client = async () => {
    let session: ClientHttp2Session | null = null;
    const current = () => {
      if (!session || session.closed || session.destroyed) session = newSession();
      return session;
    };
    const loop = async () => {
      while (on()) await ask('h2-session', current);
    };
    await Promise.all([loop(), loop()]);
  };
  const freshLoop = async () => {
    while (on()) {
      const used: ClientHttp2Session[] = [];
      await ask('h2-fresh', () => {
        const session = newSession();
        used.push(session);
        return session;
      });
      for (const session of used) session.close();
    }
  };
  const loops = Promise.all([...Array.from({ length: sessions }, client), ...Array.from({ length: fresh }, freshLoop)]);
  return track({
    async stop() {
      stopped = true;
      await loops;
      for (const session of open) session.destroy();
    },
  });
}

async function h2Probe(authority: string, options: SecureClientSessionOptions): Promise<Identity> {
  const session = connect(authority, options);
  session.on('error', () => {});
  try {
    return JSON.parse(await request(session)) as Identity;
  } finally {
    session.destroy();
  }
}

/** Every reload told some client session to go away: the sessions moved because of GOAWAY. */
function assertGoaway({ tally, reloads, loadStoppedAt }: Outcome): void {
  reloads.forEach(({ generation, sighupAt }, i) => {
    const until = reloads[i + 1]?.sighupAt ?? loadStoppedAt;
    const goaways = tally.notes.filter((n) => n.what === 'GOAWAY' && n.at >= sighupAt && n.at < until);
    assert.ok(goaways.length > 0, `no client session got GOAWAY during the reload to generation ${generation}`);
  });
}

test('node:http2 cleartext (h2c): sessions move to the new code within seconds (GOAWAY), no stream fails', async (t) => {
  const authority = (port: number) => `http://127.0.0.1:${port}`;
  const outcome = await runScenario({
    diagnostic: (line) => t.diagnostic(line),
    app: 'http2.cjs',
    probe: (port) => h2Probe(authority(port), {}),
    load: (port, tally) => [h2Load(authority(port), {}, tally)],
  });
  assertGoaway(outcome);
});

test('node:http2 over TLS (createSecureServer): sessions move to the new code within seconds (GOAWAY), no stream fails', async (t) => {
  const { key, cert, remove } = tlsPair();
  try {
    const options: SecureClientSessionOptions = { ca: readFileSync(cert) };
    const authority = (port: number) => `https://127.0.0.1:${port}`;
    const outcome = await runScenario({
      diagnostic: (line) => t.diagnostic(line),
      app: 'http2.cjs',
      env: { TLS_KEY: key, TLS_CERT: cert },
      probe: (port) => h2Probe(authority(port), options),
      load: (port, tally) => [h2Load(authority(port), options, tally)],
    });
    assertGoaway(outcome);
  } finally {
    remove();
  }
});
