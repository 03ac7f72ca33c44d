/**
 * CONTRACT §7 "Charge history after a restart", through the built CLI: a session that ended during a
 * 2-second restart and that only charge history knows (no 723 on the bus, none in /state) is in
 * charging_sessions within 60 s of the start.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers.js';
import { liveHarness } from '../sync/live-harness.js';

describe('charge history after a short restart', () => {
  it('a session only charge history knows, ended during a 2-second restart, is stored within 60 s', {
    timeout: 120_000,
  }, async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 });
    const first = h.start();
    await h.connected();
    // The first start's backfill has run: its pass is recorded.
    await waitFor(() => h.one<{ n: number }>('SELECT count(*) AS n FROM charge_history_passes').n === 1, {
      timeoutMs: 30_000,
      what: 'the first charge-history pass',
    });
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const charger = [...h.sim.fleet.chargers.values()][0]!;
    const end = Date.now();
    const quiet = h.sim.fleet.completeSession({
      chargerId: charger.id,
      sessionId: '5e551011-0000-4000-8000-000000000001',
      startedAt: end - 3_600_000,
      endedAt: end,
      meterStartKwh: 2000,
      energyKwh: 7.5,
    });
    await new Promise((r) => setTimeout(r, 2_000));
    const restarted = Date.now();
    const second = h.start();
    await waitFor(
      () =>
        h.one<{ n: number }>('SELECT count(*) AS n FROM charging_sessions WHERE id = ?', quiet.id).n === 1,
      { timeoutMs: 60_000, what: 'the session only charge history knows' },
    );
    expect(Date.now() - restarted).toBeLessThan(60_000);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});
