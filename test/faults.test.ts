/**
 * Issue 9 §1: API faults against the real `run` process. 429 storms in every header convention the parser
 * knows, a long Retry-After across a restart, and a 5xx storm that the circuit breaker turns into a pause.
 */
import { describe, expect, it } from 'vitest';
import type { SimRequest } from '../src/simulator/rest.js';
import { waitFor } from './helpers.js';
import { type Harness, harness } from './sync/harness.js';

/** A delta in whole seconds, rounded up as a server would so that its client never comes early. */
const secondsUntil = (t: number, at: number) => Math.ceil((t - at) / 1000);

/** A server's "wait until" in each convention, for a reset at `t` (whole seconds) named at arrival `at`. */
const CONVENTIONS: [string, (t: number, at: number) => Record<string, string>][] = [
  ['Retry-After in seconds', (t, at) => ({ 'retry-after': String(secondsUntil(t, at)) })],
  ['Retry-After as an HTTP date', (t) => ({ 'retry-after': new Date(t).toUTCString() })],
  ['retry-after-ms', (t, at) => ({ 'retry-after-ms': String(t - at) })],
  [
    'X-RateLimit-Reset in epoch seconds',
    (t) => ({
      'x-ratelimit-limit': '600',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(t / 1000),
    }),
  ],
  [
    'X-Rate-Limit-Reset as ISO 8601',
    (t) => ({ 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': new Date(t).toISOString() }),
  ],
  [
    'RateLimit-Reset in seconds (IETF drafts ≤ 06)',
    (t, at) => ({
      'ratelimit-limit': '600',
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(secondsUntil(t, at)),
    }),
  ],
  [
    'RateLimit with RateLimit-Policy (IETF draft 11)',
    (t, at) => ({
      ratelimit: `"minute";r=0;t=${secondsUntil(t, at)}`,
      'ratelimit-policy': '"minute";q=600;w=60',
    }),
  ],
];

const isState = (r: SimRequest) => r.path.endsWith('/state');

/** Issue 9 §5 under these faults: neither the password nor any token issued appears in the output. */
function expectNoSecrets(h: Harness, output: string): void {
  expect(output).not.toContain(h.sim.users[0]!.password);
  for (const token of h.sim.issuedTokens) expect(output).not.toContain(token);
}

/**
 * The daemon polling `chargers` chargers (events off), after its start pass. With one charger, one
 * request is on the wire at a time, so "sent after the 429" is exact.
 */
async function polling(chargers: number) {
  const h = await harness(
    { installations: 1, chargersPerInstallation: chargers },
    { ZAPTEC_EVENTS: 'off', LOG_LEVEL: 'debug' },
  );
  const run = h.start();
  await waitFor(() => h.sim.requests.filter((r) => isState(r) && r.status === 200).length >= chargers, {
    timeoutMs: 30_000,
    what: 'the start pass',
  });
  return { h, run };
}

describe('API faults against the daemon', () => {
  it('honours a 429 storm in every header convention: nothing is sent before the time each one names', {
    timeout: 120_000,
  }, async () => {
    const { h, run } = await polling(1);
    const named: { at: number; until: number }[] = [];
    h.sim.faults.push(
      ...CONVENTIONS.map(([, headers]) => ({
        path: /\/state$/,
        status: 429,
        times: 1,
        headers: (at: number) => {
          const until = Math.ceil((at + 3_000) / 1000) * 1000;
          named.push({ at, until });
          return headers(until, at);
        },
      })),
    );
    await waitFor(() => named.length === CONVENTIONS.length, { timeoutMs: 90_000, what: 'the storm' });
    await waitFor(
      () => h.sim.requests.some((r) => isState(r) && r.status === 200 && r.at > named.at(-1)!.until),
      {
        timeoutMs: 30_000,
        what: 'a state read after the storm',
      },
    );
    for (const [i, { at, until }] of named.entries()) {
      const early = h.sim.requests.filter((r) => r.at > at && r.at < until);
      expect(early, `after the ${CONVENTIONS[i]![0]} 429`).toEqual([]);
    }
    expect(h.sim.requests.filter((r) => r.limit)).toEqual([]);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    expectNoSecrets(h, run.output());
  });

  it('keeps a long Retry-After across a restart, clamped to twice the longest window it concerns', {
    timeout: 60_000,
  }, async () => {
    const { h, run } = await polling(1);
    h.sim.faults.push({ path: /\/state$/, status: 429, times: 1, headers: { 'retry-after': '3600' } });
    const hit = await waitFor(() => h.sim.requests.find((r) => r.status === 429), {
      timeoutMs: 30_000,
      what: 'the 429',
    });
    const block = await waitFor(
      () =>
        h.one<{ blocked_until_ms: number; source: string } | undefined>(
          "SELECT blocked_until_ms, source FROM api_blocks WHERE grp = 'global'",
        ),
      { timeoutMs: 30_000, what: 'the pause recorded' },
    );
    expect(block.source).toBe('server:retry-after');
    // The global group's longest window is 60 s: an hour is implausible, so 120 s (plus jitter).
    expect(block.blocked_until_ms).toBeGreaterThanOrEqual(hit.at + 119_000);
    expect(block.blocked_until_ms).toBeLessThanOrEqual(hit.at + 122_000);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    expectNoSecrets(h, run.output());
    const sent = h.sim.requests.length;
    const again = h.start();
    const started = Date.now();
    // Two heartbeats of the new process: it is up and running, and has sent nothing.
    await waitFor(
      () =>
        Date.parse(h.one<{ heartbeat_at: string }>('SELECT heartbeat_at FROM daemon').heartbeat_at) >
        started + 5_000,
      { timeoutMs: 20_000, what: 'the restarted daemon beating' },
    );
    expect(h.sim.requests.slice(sent)).toEqual([]);
    expect(await h.stop(again)).toEqual({ code: 0, signal: null });
    expectNoSecrets(h, again.output());
  });

  it('turns a 5xx storm into a pause after 5 failures in a row, then recovers with one probe', {
    timeout: 120_000,
  }, async () => {
    const { h, run } = await polling(3);
    const storm = { path: /^\/api\//, status: 503, times: 1_000_000 };
    h.sim.faults.push(storm);
    const block = await waitFor(
      () =>
        h.one<{ blocked_until_ms: number } | undefined>(
          "SELECT blocked_until_ms FROM api_blocks WHERE grp = 'global' AND source = 'local:breaker'",
        ),
      { timeoutMs: 60_000, what: 'the breaker' },
    );
    const failures = () => h.sim.requests.filter((r) => r.status === 503);
    const failed = () => failures().length;
    // Five in a row open the breaker. Requests already on their way then (the other state-reader workers, a
    // charge-history page) may still fail, but they arrived with the fifth: nothing is sent after it.
    const atOpen = failed();
    expect(atOpen).toBeGreaterThanOrEqual(5);
    const fifth = failures()[4]!.at;
    expect(failures().filter((r) => r.at > fifth + 1_000)).toEqual([]);
    storm.times = 0; // the API is back
    await waitFor(
      () => h.sim.requests.some((r) => isState(r) && r.status === 200 && r.at >= block.blocked_until_ms),
      {
        timeoutMs: 90_000,
        what: 'a state read after the pause',
      },
    );
    expect(failed()).toBe(atOpen);
    const probe = h.sim.requests.find((r) => r.at >= block.blocked_until_ms - 1000);
    expect(probe?.status).toBe(200);
    expect(run.output()).toMatch(/API failing: pausing the group, then one probe/);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    expectNoSecrets(h, run.output());
  });
});
