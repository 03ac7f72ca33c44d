/** issue 9 §2: a consumer that holds the write lock longer than the busy timeout loses nothing. */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers.js';
import { liveHarness } from './sync/live-harness.js';

describe('a consumer holding the write lock past the busy timeout', () => {
  it('makes the daemon hold its messages uncompleted, and commit them all once the lock is released', {
    timeout: 90_000,
  }, async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 5 });
    const run = h.start();
    await h.connected();
    const blocker = new Database(h.dbPath);
    blocker.exec('BEGIN IMMEDIATE');
    const chargers = [...h.sim.fleet.chargers.values()];
    const t0 = Date.now() + 60_000;
    for (let i = 0; i < 50; i++) h.sim.publish(h.sim.fleet.set(chargers[i % 5]!.id, 513, String(i), t0 + i));
    const channel = h.sim.channel([...h.sim.fleet.installations.keys()][0]!);
    // The daemon's batch waits out its 5 s busy timeout and fails: nothing is completed meanwhile.
    await new Promise((r) => setTimeout(r, 7_000));
    expect(h.sim.broker.stats(channel.topic, channel.subscription).completed).toBe(0);
    blocker.exec('ROLLBACK');
    blocker.close();
    await waitFor(
      () =>
        h.one<{ n: number }>(
          'SELECT count(*) AS n FROM charger_state_history WHERE state_id = 513 AND observed_at >= ?',
          new Date(t0).toISOString(),
        ).n === 50,
      { timeoutMs: 40_000, what: 'all 50 observations after the lock' },
    );
    await waitFor(() => {
      const s = h.sim.broker.stats(channel.topic, channel.subscription);
      return s.ready === 0 && s.locked === 0;
    });
    expect(h.sim.broker.stats(channel.topic, channel.subscription).deadLettered).toBe(0);
    expect(run.child.exitCode).toBeNull();
    expect(run.output()).toMatch(/cannot write live observations/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
