/**
 * issue 15 / CONTRACT §8 against the real process: a session ended on the bus is a verified row within 5 s;
 * charge history brings the sessions no 723 announced (first start, and after downtime); both sources give
 * one row; `ZAPTEC_SESSIONS=off` keeps neither rows nor charge-history calls.
 */
import { describe, expect, it } from 'vitest';
import type { SimSession } from '../../src/simulator/fleet.js';
import { runCli, waitFor } from '../helpers.js';
import { liveHarness } from './live-harness.js';

const HOUR = 3_600_000;

type Row = {
  id: string;
  source: string;
  signature_valid: number | null;
  ocmf_signed: number;
  energy_kwh: number;
};

describe('charging sessions, end to end', () => {
  it('from the bus within 5 s and verified; from charge history on the first start and after downtime; one row each', {
    timeout: 120_000,
  }, async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2, deviceTypes: [1, 4] });
    const [pro, go] = [...h.sim.fleet.chargers.values()];
    const end = (charger: typeof pro, endedAt: number, n: number): SimSession =>
      h.sim.fleet.completeSession({
        chargerId: charger!.id,
        sessionId: `5e551011-0000-4000-8000-${String(n).padStart(12, '0')}`,
        startedAt: endedAt - HOUR,
        endedAt,
        meterStartKwh: 2000 + n,
        energyKwh: 3 + n,
      });
    // Two days ago, before the daemon ever ran: only the charge history knows it.
    const before = end(go, Date.now() - 2 * 24 * HOUR, 1);
    const rows = () => h.query<Row>('SELECT * FROM charging_sessions ORDER BY id');
    let run = h.start();
    await h.connected();
    await waitFor(() => rows().some((r) => r.id === before.id), { what: 'the first start pass' });
    expect(rows().find((r) => r.id === before.id)).toMatchObject({ source: 'history', ocmf_signed: 0 });
    // The Pro MID's key (981) comes with the start pass's state read.
    await waitFor(() => h.query('SELECT 1 FROM charger_state WHERE state_id = 981').length > 0);

    const live = end(pro, Date.now(), 2);
    const pushedAt = Date.now();
    h.sim.publish(h.sim.fleet.set(pro!.id, 723, live.completed, live.endedAt));
    await waitFor(() => rows().some((r) => r.id === live.id), {
      timeoutMs: 5_000,
      what: 'the row within 5 s',
    });
    expect(Date.now() - pushedAt).toBeLessThanOrEqual(5_000);
    expect(rows().find((r) => r.id === live.id)).toMatchObject({
      source: 'event',
      ocmf_signed: 1,
      signature_valid: 1,
    });
    // The same 723 again (a replay) and from a state read: still one row.
    h.sim.publish(h.sim.fleet.set(pro!.id, 723, live.completed, live.endedAt));
    expect(await runCli(['refresh', pro!.deviceId, '--wait', '20'], { env: h.env })).toMatchObject({
      code: 0,
    });
    expect(rows().filter((r) => r.id === live.id)).toHaveLength(1);

    // Down: sessions end and their 723s are lost; the last heartbeat is three hours old.
    run.child.kill('SIGTERM');
    await run.exited;
    const lost = [end(go, Date.now() - 1_000, 3), end(pro, Date.now() - 500, 4)];
    const { default: Database } = await import('better-sqlite3');
    const w = new Database(h.dbPath);
    w.prepare('UPDATE daemon SET heartbeat_at = ?').run(new Date(Date.now() - 3 * HOUR).toISOString());
    w.close();
    run = h.start();
    await waitFor(() => lost.every((s) => rows().some((r) => r.id === s.id)), { what: 'the downtime pass' });
    expect(rows().map((r) => r.id)).toEqual([before, live, ...lost].map((s) => s.id).sort());
    expect(rows().find((r) => r.id === lost[1]!.id)).toMatchObject({ source: 'history', signature_valid: 1 });

    const csv = await runCli(['sessions', '--format', 'csv'], { env: h.env });
    expect(csv.code).toBe(0);
    expect(csv.stdout.trim().split('\r\n')).toHaveLength(1 + 4);
    run.child.kill('SIGTERM');
    await run.exited;
  });

  it('ZAPTEC_SESSIONS=off: no rows and no charge-history calls', { timeout: 60_000 }, async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 1 });
    const [c] = [...h.sim.fleet.chargers.values()];
    const s = h.sim.fleet.completeSession({
      chargerId: c!.id,
      sessionId: '5e551011-0000-4000-8000-0000000000ff',
      startedAt: Date.now() - HOUR,
      endedAt: Date.now(),
      meterStartKwh: 10,
      energyKwh: 1,
    });
    const run = h.start({ ZAPTEC_SESSIONS: 'off' });
    await h.connected();
    h.sim.publish(h.sim.fleet.set(c!.id, 723, s.completed, s.endedAt));
    await waitFor(() => h.query('SELECT 1 FROM charger_state WHERE state_id = 723').length > 0);
    expect(h.query('SELECT * FROM charging_sessions')).toEqual([]);
    expect(h.sim.rest.requests.filter((r) => r.path === '/api/chargehistory')).toEqual([]);
    run.child.kill('SIGTERM');
    await run.exited;
  });
});
