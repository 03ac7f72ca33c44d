/**
 * Issue 9 §1: API faults against the real `run` process: a long Retry-After kept across a restart of the
 * process, and no secret in its output. The timing policies themselves — a 429 storm in every header
 * convention, the circuit breaker's pause after a 5xx storm — run on the simulated clock
 * (test/simulation/policies.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { SimRequest } from '../src/simulator/rest.js';
import { waitFor } from './helpers.js';
import { type Harness, harness } from './sync/harness.js';

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
});
