/**
 * issue 15 §3 / CONTRACT §8: charge history read per installation — the first start's ZAPTEC_SESSIONS_DAYS,
 * after downtime and live-event gaps from the last session end with an hour of overlap, and once a day — from
 * the simulator's `/api/chargehistory` through the real client, on a stepped clock.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { Fleet } from '../../src/simulator/fleet.js';
import { RestSimulator } from '../../src/simulator/rest.js';
import { openDatabase } from '../../src/store/database.js';
import { SessionStore } from '../../src/store/sessions.js';
import { ChargeHistorySync } from '../../src/sync/charge-history.js';
import { Problems } from '../../src/sync/problems.js';
import { SteppedClock } from '../clock.js';
import { tempDir } from '../helpers.js';
import { simulatorClient } from '../sim-client.js';

const quiet = createLogger({ level: process.env.TEST_LOG ?? 'silent' });
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

async function setup(o: { lastAlive?: number; path?: string; clock?: SteppedClock } = {}) {
  const clock = o.clock ?? new SteppedClock(Date.parse('2026-11-30T10:00:00Z'));
  const fleet = new Fleet({
    seed: 15,
    installations: 2,
    chargersPerInstallation: 3,
    deviceTypes: [4, 1],
    now: clock.now(),
  });
  const sim = new RestSimulator({ fleet, now: () => clock.now() });
  await sim.start();
  const db = openDatabase(o.path ?? join(tempDir(), 'z.db'), { create: true, daemon: true });
  const client = simulatorClient(sim, { db, clock });
  const sessions = new SessionStore(db, { personalData: false, log: quiet, now: () => clock.now() });
  const installations = [...fleet.installations.keys()];
  const sync = new ChargeHistorySync({
    api: client.api,
    sessions,
    followed: () => installations,
    clock,
    log: quiet,
    problems: new Problems(quiet, clock),
    days: 30,
    lastAlive: o.lastAlive,
  });
  const chargers = [...fleet.chargers.values()];
  let n = 0;
  /** A session of a charger that ended `ago` ms before now, never pushed. */
  const ended = (ago: number, charger = chargers[n % chargers.length]!) => {
    n++;
    const end = clock.now() - ago;
    return fleet.completeSession({
      chargerId: charger.id,
      sessionId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      startedAt: end - 2 * HOUR,
      endedAt: end,
      meterStartKwh: 1000 + n,
      energyKwh: 5 + n / 10,
    });
  };
  const ids = () =>
    (db.prepare('SELECT id FROM charging_sessions ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  const historyCalls = () => sim.requests.filter((r) => r.path === '/api/chargehistory');
  /** Virtual time moves in steps, with real time between them for the HTTP on loopback to travel. */
  const pump = async (ms: number, stepMs = 10_000) => {
    const end = clock.now() + ms;
    while (clock.now() < end) {
      await clock.runUntil(Math.min(end, clock.now() + stepMs), 2);
      await new Promise((r) => setTimeout(r, 4));
    }
  };
  const close = async () => {
    await sync.stop();
    await client.close();
    await sim.stop();
    db.close();
  };
  return { clock, fleet, sim, db, sync, sessions, ended, ids, historyCalls, installations, pump, close };
}

describe('charge history', () => {
  it('first start: the last ZAPTEC_SESSIONS_DAYS of every installation, paged by 100 with EnergyDetails, one row per session', {
    timeout: 60_000,
  }, async () => {
    const t = await setup();
    try {
      const old = t.ended(31 * DAY);
      const recent = Array.from({ length: 230 }, (_, i) => t.ended(((i + 1) * 29 * DAY) / 231));
      t.sync.start();
      await t.pump(2 * MIN);
      expect(t.ids()).toEqual(recent.map((s) => s.id).sort());
      expect(t.ids()).not.toContain(old.id);
      const calls = t.historyCalls();
      // 230 sessions over 2 installations: at most 3 pages each, every one with PageSize 100 and DetailLevel 1.
      expect(calls.length).toBeLessThanOrEqual(6);
      for (const c of calls) {
        expect(c.query).toContain('PageSize=100');
        expect(c.query).toContain('DetailLevel=1');
      }
      const energy = t.db
        .prepare('SELECT count(DISTINCT session_id) AS n FROM charging_session_energy')
        .get() as { n: number };
      expect(energy.n).toBe(230);
      // Signed sessions of the Pro MID chargers: signed, not yet verified (no 981 observed by this store).
      const signed = t.db
        .prepare('SELECT count(*) AS n FROM charging_sessions WHERE ocmf_signed = 1')
        .get() as {
        n: number;
      };
      expect(signed.n).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });

  it('a session whose 723 never came appears after a simulated day; the daily pass costs one call per installation', {
    timeout: 60_000,
  }, async () => {
    const t = await setup();
    try {
      t.sync.start();
      await t.pump(5 * MIN);
      const firstCalls = t.historyCalls().length;
      expect(firstCalls).toBe(2);
      const missed = t.ended(0);
      await t.pump(25 * HOUR, 60_000);
      expect(t.ids()).toContain(missed.id);
      // One pass a day per installation (2 installations, 25 hours: 2 daily passes at most each).
      const daily = t.historyCalls().length - firstCalls;
      expect(daily).toBeGreaterThanOrEqual(2);
      expect(daily).toBeLessThanOrEqual(4);
    } finally {
      await t.close();
    }
  });

  it('after 3 hours of downtime: every session of that time, read from the last known end with an hour of overlap', {
    timeout: 60_000,
  }, async () => {
    const path = join(tempDir(), 'z.db');
    const first = await setup({ path });
    const clock = first.clock;
    first.sync.start();
    first.ended(30 * MIN);
    await first.pump(2 * MIN);
    const ends = first.installations.map((i) => first.sessions.lastEnd(i));
    const passes = first.installations.map((i) => first.sessions.pass(i)!);
    expect(ends.some((e) => e !== undefined)).toBe(true);
    await first.close();
    // Down for 3 hours: sessions end meanwhile, their 723s lost.
    await clock.runUntil(clock.now() + 3 * HOUR, 0);
    const t = await setup({ path, clock, lastAlive: clock.now() - 3 * HOUR });
    try {
      const during = [t.ended(2.5 * HOUR), t.ended(HOUR), t.ended(MIN)];
      t.sync.start();
      await t.pump(2 * MIN);
      for (const s of during) expect(t.ids()).toContain(s.id);
      // Each installation from its last known session end minus exactly an hour (or, with none, from where its
      // last pass read to, minus the hour), not 30 days back.
      const froms = new Map(
        t.historyCalls().map((c) => {
          const q = new URLSearchParams(c.query);
          return [q.get('InstallationId')!, Date.parse(q.get('From')!)];
        }),
      );
      t.installations.forEach((inst, i) => {
        expect(froms.get(inst)).toBe((ends[i] ?? passes[i]!.readUntil) - HOUR);
      });
    } finally {
      await t.close();
    }
  });

  it('after a 2-second restart: a session only charge history knows is there within 60 s; restarts in a loop read each history once per 15 minutes', {
    timeout: 60_000,
  }, async () => {
    const path = join(tempDir(), 'z.db');
    const first = await setup({ path });
    const clock = first.clock;
    first.sync.start();
    await first.pump(2 * MIN);
    await first.close();
    await clock.runUntil(clock.now() + 2_000, 0);
    const t = await setup({ path, clock, lastAlive: clock.now() - 2_000 });
    const quiet = t.ended(1_000); // ended during the restart; no 723 on the bus, none in /state
    t.sync.start();
    await t.pump(60_000, 5_000);
    expect(t.ids()).toContain(quiet.id);
    const calls = t.historyCalls().length;
    expect(calls).toBe(2); // one per installation
    await t.close();
    // Restarted again and again within 15 minutes of that pass: no more charge-history calls.
    for (let i = 0; i < 3; i++) {
      await clock.runUntil(clock.now() + 2 * MIN, 0);
      const again = await setup({ path, clock, lastAlive: clock.now() - 2_000 });
      again.sync.start();
      await again.pump(MIN, 5_000);
      expect(again.historyCalls()).toHaveLength(0);
      await again.close();
    }
    // Past 15 minutes since the last one, a restart reads them again.
    await clock.runUntil(clock.now() + 10 * MIN, 0);
    const later = await setup({ path, clock, lastAlive: clock.now() - 2_000 });
    try {
      later.sync.start();
      await later.pump(MIN, 5_000);
      expect(later.historyCalls()).toHaveLength(2);
    } finally {
      await later.close();
    }
  });

  it('a live-event gap reads that installation again, coalesced; a 403 is said once and not asked again that day', {
    timeout: 60_000,
  }, async () => {
    const t = await setup();
    try {
      t.sync.start();
      await t.pump(2 * MIN);
      const before = t.historyCalls().length;
      const [a, b] = t.installations;
      const lost = t.ended(10 * MIN, [...t.fleet.chargers.values()].find((c) => c.installationId === a)!);
      t.sync.afterGap(a!);
      t.sync.afterGap(a!);
      await t.pump(MIN);
      expect(t.historyCalls().length - before).toBe(1);
      expect(t.ids()).toContain(lost.id);
      // No access to b's history any more: refused once, then left alone for the day.
      t.fleet.installations.get(b!)!.active = false;
      t.sync.afterGap(b!);
      await t.pump(20 * MIN, 60_000);
      t.sync.afterGap(b!);
      await t.pump(20 * MIN, 60_000);
      const refused = t.historyCalls().filter((c) => c.status === 403);
      expect(refused).toHaveLength(1);
    } finally {
      await t.close();
    }
  });
});
