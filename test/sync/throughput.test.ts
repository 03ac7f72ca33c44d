/**
 * issue 5: 100,000 observations over 1,000 chargers through the real SDK and the real `run` process.
 * Every (charger, state) ends equal to the newest published value, the broker keeps nothing ready or
 * locked, and the test reports observations/s and the p99 publish→commit latency.
 */
import { describe, expect, it } from 'vitest';
import type { SimObservation } from '../../src/simulator/fleet.js';
import { waitFor } from '../helpers.js';
import { liveHarness } from './live-harness.js';

const TOTAL = 100_000;
/** Published in ticks of this many every 10 ms: 8,000/s offered. */
const PER_TICK = 80;
const STATES = [513, 553, 501, 502, 503, 507, 508, 509, 710, 554];

describe('live events at volume', () => {
  it('100,000 observations over 1,000 chargers: all newest values in SQLite, nothing left on the broker', {
    timeout: 240_000,
  }, async () => {
    const h = await liveHarness(
      { installations: 10, chargersPerInstallation: 100 },
      { ZAPTEC_HISTORY_DAYS: '7', LOG_LEVEL: 'warn' },
    );
    const run = h.start();
    await h.connected(60_000);
    const chargers = [...h.sim.fleet.chargers.values()];
    const published = new Map<string, number>();
    const newest = new Map<string, SimObservation>();
    const t0 = Date.now() + 3_600_000; // newer than anything a state read can bring
    const startedAt = Date.now();
    for (let i = 0; i < TOTAL; i += PER_TICK) {
      for (let k = i; k < Math.min(TOTAL, i + PER_TICK); k++) {
        const c = chargers[k % chargers.length]!;
        const o = h.sim.fleet.set(
          c.id,
          STATES[Math.floor(k / chargers.length) % STATES.length]!,
          String(k),
          t0 + k,
        );
        h.sim.publish(o);
        published.set(`${c.id}:${o.stateId}:${o.at}`, Date.now());
        newest.set(`${c.id}:${o.stateId}`, o);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(
      // A state read may store an observation first (same time, same value): history keeps one row, source poll.
      () =>
        h.one<{ n: number }>(
          'SELECT count(*) AS n FROM charger_state_history WHERE observed_at >= ?',
          new Date(t0).toISOString(),
        ).n === TOTAL,
      { timeoutMs: 180_000, intervalMs: 250, what: 'every observation committed' },
    );
    const rows = h.query<{ charger_id: string; state_id: number; observed_at: string; received_at: string }>(
      "SELECT charger_id, state_id, observed_at, received_at FROM charger_state_history WHERE source = 'event' AND observed_at >= ?",
      new Date(t0).toISOString(),
    );
    const latencies = rows
      .map(
        (r) =>
          Date.parse(r.received_at) -
          published.get(`${r.charger_id}:${r.state_id}:${Date.parse(r.observed_at)}`)!,
      )
      .sort((a, b) => a - b);
    const lastCommit = Math.max(...rows.map((r) => Date.parse(r.received_at)));
    const rate = TOTAL / ((lastCommit - startedAt) / 1000);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    console.log(
      `live events: ${TOTAL} observations over ${chargers.length} chargers in ${((lastCommit - startedAt) / 1000).toFixed(1)} s = ${Math.round(rate)} obs/s (offered 8,000/s); publish→commit p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`,
    );
    const current = new Map(
      h
        .query<{ charger_id: string; state_id: number; value: string; observed_at: string }>(
          'SELECT charger_id, state_id, value, observed_at FROM charger_state',
        )
        .map((r) => [`${r.charger_id}:${r.state_id}`, r]),
    );
    for (const [key, o] of newest)
      expect(current.get(key)).toMatchObject({ value: o.value, observed_at: new Date(o.at).toISOString() });
    await waitFor(() =>
      [...h.sim.fleet.installations.keys()].every((id) => {
        const c = h.sim.channel(id);
        const s = h.sim.broker.stats(c.topic, c.subscription);
        return s.ready === 0 && s.locked === 0 && s.deadLettered === 0;
      }),
    );
    expect(latencies.length).toBeGreaterThan(TOTAL * 0.95);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
