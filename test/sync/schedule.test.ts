/** The clock-driven behaviours, with an injected clock: hourly spacing, spread reconciliation, daily constants. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HttpStatusError } from '../../src/http/errors.js';
import { createLogger } from '../../src/log.js';
import { DaemonRecord } from '../../src/store/daemon-row.js';
import { openDatabase } from '../../src/store/database.js';
import { InventoryStore } from '../../src/store/inventory.js';
import { ObservationStore } from '../../src/store/observations.js';
import { ReconcileSpacingStore } from '../../src/store/reconcile-spacing.js';
import { SyncStatusStore } from '../../src/store/sync-status.js';
import { Daemon } from '../../src/sync/daemon.js';
import { INVENTORY_SPACING_MS, InventorySync } from '../../src/sync/inventory.js';
import { Problems } from '../../src/sync/problems.js';
import { MODE_CHANGE_FOLLOW_UP_MS, type StateApi, StateReader } from '../../src/sync/state-reader.js';
import type { Clock } from '../../src/time.js';
import { STATE_READ_SPACING_MS, type ZaptecApi } from '../../src/zaptec/api.js';
import { SteppedClock, VirtualClock } from '../clock.js';
import { maxInWindow, tempDir } from '../helpers.js';

const silent = createLogger({ level: 'silent' });
const INST = '2bbec6f9-c3ce-4edf-a72f-b1b2a663c6ba';
const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

function stores(clock: Clock) {
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  const daemon = new DaemonRecord(db);
  daemon.started('test', 1, clock.now());
  return {
    db,
    daemon,
    inventory: new InventoryStore(db),
    observations: new ObservationStore(db, { historyDays: 7, now: () => clock.now() }),
    syncStatus: new SyncStatusStore(db),
  };
}

/** The inventory sync over these stores, hourly at minute 7 as the default schedule. */
function inventorySync(api: ZaptecApi, s: ReturnType<typeof stores>, clock: Clock): InventorySync {
  return new InventorySync({
    api,
    ...s,
    store: s.inventory,
    clock,
    log: silent,
    cronExpression: '7 * * * *',
    followed: undefined,
  });
}

/** A stand-in for the API that counts calls. */
function fakeApi(chargers: number) {
  const calls = { installations: 0, chargers: 0, hierarchy: 0, constants: 0 };
  const api = {
    installations: async () => {
      calls.installations++;
      return [{ Id: INST, Name: 'Home' }];
    },
    chargers: async () => {
      calls.chargers++;
      return Array.from({ length: chargers }, (_, i) => ({
        Id: id(i),
        DeviceId: `ZAP${i}`,
        Name: `c${i}`,
        DeviceType: 4,
        InstallationId: INST,
      }));
    },
    hierarchy: async () => {
      calls.hierarchy++;
      return undefined;
    },
    constants: async () => {
      calls.constants++;
      return { Observations: { ChargerOperationMode: 710 }, Schema: {} };
    },
  };
  return { api: api as unknown as ZaptecApi, calls };
}

describe('inventory spacing and constants (virtual clock)', () => {
  it('never runs two passes within 60 minutes, even across restarts, and reads constants at most daily', async () => {
    const clock = new VirtualClock();
    const s = stores(clock);
    const { api, calls } = fakeApi(3);
    const make = () => inventorySync(api, s, clock);
    let sync = make();
    await sync.startupPass();
    expect(calls).toMatchObject({ installations: 1, chargers: 1, hierarchy: 1, constants: 1 });
    expect(s.syncStatus.all()).toEqual([]); // no row is invented by the inventory itself
    clock.advance(59 * 60_000);
    sync = make(); // a restart
    await sync.startupPass();
    expect(await sync.refresh('schedule')).toBe(false);
    expect(calls.installations).toBe(1);
    clock.advance(60_000);
    expect(await sync.refresh('schedule')).toBe(true);
    expect(calls).toMatchObject({ installations: 2, constants: 1 });
    expect(sync.allowedAt()).toBe(clock.now() + INVENTORY_SPACING_MS);
    clock.advance(22 * 3_600_000); // 23 h after the first constants
    await sync.refresh('schedule');
    expect(calls.constants).toBe(1);
    clock.advance(3_600_000); // 24 h
    await sync.refresh('schedule');
    expect(calls.constants).toBe(2);
  });

  it('fires the cron on the injected clock: a simulated day of "7 * * * *" is 24 passes at :07, an hour apart', async () => {
    const clock = new SteppedClock(Date.parse('2026-11-30T00:30:00Z'));
    const s = stores(clock);
    const { api, calls } = fakeApi(2);
    const sync = inventorySync(api, s, clock);
    const at: number[] = [];
    const refresh = sync.refresh.bind(sync);
    sync.refresh = (reason, o) => {
      if (reason === 'schedule') at.push(clock.now());
      return refresh(reason, o);
    };
    sync.start();
    expect(s.daemon.read()?.next_inventory_at).toBe('2026-11-30T01:07:00.000Z');
    await clock.runUntil(Date.parse('2026-12-01T00:30:00Z'), 0);
    await sync.stop();
    expect(at).toHaveLength(24);
    expect(at.map((t) => new Date(t).toISOString().slice(13))).toEqual(Array(24).fill(':07:00.000Z'));
    expect(calls.installations).toBe(24);
  });

  it('marks vanished chargers inactive and brings reappearing ones back', async () => {
    const clock = new VirtualClock();
    const s = stores(clock);
    const fake = fakeApi(3);
    const sync = inventorySync(fake.api, s, clock);
    await sync.refresh('x');
    (fake.api as unknown as { chargers: () => Promise<unknown[]> }).chargers = async () => [
      { Id: id(0), DeviceId: 'ZAP0', Name: 'c0', DeviceType: 4, InstallationId: INST },
    ];
    clock.advance(INVENTORY_SPACING_MS);
    await sync.refresh('x');
    const rows = s.db.prepare('SELECT id, active, removed_at FROM chargers ORDER BY id').all() as {
      active: number;
      removed_at: string | null;
    }[];
    expect(rows.map((r) => r.active)).toEqual([1, 0, 0]);
    expect(rows[1]!.removed_at).toBe(new Date(clock.now()).toISOString());
  });
});

describe('the daemon on the injected clock', () => {
  it('writes its heartbeat every 5 s of the clock, and none after stop', async () => {
    const clock = new SteppedClock(Date.parse('2026-11-30T00:00:00Z'));
    const s = stores(clock);
    const daemon = new Daemon({
      record: s.daemon,
      clock,
      log: silent,
      version: 'test',
      components: [],
      problems: new Problems(silent, clock),
    });
    const beats: string[] = [];
    const heartbeat = s.daemon.heartbeat.bind(s.daemon);
    s.daemon.heartbeat = (now, problems) => {
      beats.push(new Date(now).toISOString().slice(11, 19));
      heartbeat(now, problems);
    };
    await daemon.start();
    await clock.runUntil(clock.now() + 21_000, 0);
    await daemon.stop();
    await clock.runUntil(clock.now() + 20_000, 0);
    expect(beats).toEqual(['00:00:05', '00:00:10', '00:00:15', '00:00:20']);
  });
});

describe('reconciliation (virtual clock)', () => {
  function makeReader(
    chargers: number,
    reconcileMinutes: number,
    reconcileMaxMinutes = reconcileMinutes,
    agesPage?: number,
  ) {
    const clock = new VirtualClock();
    const s = stores(clock);
    const snapshot = (n: number) => ({
      installations: [{ id: INST, name: 'Home', data: {} }],
      circuits: [],
      chargers: Array.from({ length: n }, (_, i) => ({
        id: id(i),
        installationId: INST,
        circuitId: null,
        deviceId: `ZAP${i}`,
        name: null,
        deviceType: 4,
        data: {},
      })),
      hierarchyMissing: new Set<string>(),
    });
    s.inventory.replace(snapshot(chargers), clock.now());
    const reads: { id: string; at: number }[] = [];
    const lastRead = new Map<string, number>();
    /** Chargers whose state read answers 404 (removed from the account). */
    const gone = new Set<string>();
    /** Chargers whose state read answers 503 (a transient failure). */
    const failing = new Set<string>();
    /** Chargers whose every read finds a value the events did not push (a setting changed in the portal). */
    const revealing = new Set<string>();
    let changes = 0;
    const warnings: string[] = [];
    const log = createLogger({
      level: 'warn',
      destination: { write: (line: string) => void warnings.push(JSON.parse(line).msg) },
    });
    const problems = new Problems(log, clock);
    const api: StateApi = {
      state: async (chargerId) => {
        reads.push({ id: chargerId, at: clock.now() });
        lastRead.set(chargerId, clock.now());
        if (gone.has(chargerId)) throw new HttpStatusError('GET', '/api/chargers/{id}/state', 404);
        if (failing.has(chargerId)) throw new HttpStatusError('GET', '/api/chargers/{id}/state', 503);
        return [
          {
            ChargerId: chargerId,
            StateId: 710,
            Timestamp: new Date(clock.now()).toISOString(),
            ValueAsString: '1',
          },
          ...(revealing.has(chargerId)
            ? [
                {
                  ChargerId: chargerId,
                  StateId: 150,
                  Timestamp: new Date(clock.now()).toISOString(),
                  ValueAsString: String(++changes),
                },
              ]
            : []),
        ];
      },
      stateReadableAt: (chargerId) => (lastRead.get(chargerId) ?? -1e12) + STATE_READ_SPACING_MS,
      lastStateRead: (chargerId) => lastRead.get(chargerId),
      chargersRead: (ids) => new Set(ids.filter((id) => lastRead.has(id))),
    };
    /** A reader over the same database and API: the daemon started again. */
    const another = () =>
      new StateReader({
        api,
        ...s,
        clock,
        log,
        problems,
        reconcileMs: reconcileMinutes * 60_000,
        reconcileMaxMs: reconcileMaxMinutes * 60_000,
        spacings: new ReconcileSpacingStore(s.db),
        requestsPerMinute: 600,
        ...(agesPage ? { agesPage } : {}),
      });
    return {
      clock,
      reader: another(),
      reads,
      s,
      another,
      gone,
      failing,
      revealing,
      problems,
      warnings,
      snapshot,
    };
  }

  function readsByCharger(reads: { id: string; at: number }[]): Map<string, number[]> {
    const byCharger = new Map<string, number[]>();
    for (const r of reads) byCharger.set(r.id, [...(byCharger.get(r.id) ?? []), r.at]);
    return byCharger;
  }

  async function runFor(clock: VirtualClock, ms: number) {
    const end = clock.now() + ms;
    while (clock.now() < end) await clock.sleep(250);
  }

  it('a fleet larger than one page of stored ages is scheduled as one; a resync asked for while pages are read runs after them', async () => {
    const { clock, reader, reads, s, snapshot } = makeReader(60, 60, 60, 7);
    reader.start();
    try {
      await reader.settled();
      await runFor(clock, 5_000);
      expect(new Set(reads.map((r) => r.id)).size).toBe(60); // every stale charger read once at start
      // Two inventory passes while the pages are read: the second one's fleet is the one scheduled.
      s.inventory.replace(snapshot(50), clock.now());
      reader.resync();
      s.inventory.replace(snapshot(40), clock.now());
      reader.resync();
      await reader.settled();
      const t0 = clock.now();
      await runFor(clock, 3 * HOUR);
      const later = reads.filter((r) => r.at >= t0);
      expect(new Set(later.map((r) => r.id)).size).toBe(40);
      expect(later.every((r) => Number(r.id.slice(-4)) < 40)).toBe(true);
      // Spread as the one-page schedule is: about one read every 90 s, never a burst.
      const perMinute = new Map<number, number>();
      for (const r of later.filter((r) => r.at >= t0 + HOUR))
        perMinute.set(Math.floor(r.at / 60_000), (perMinute.get(Math.floor(r.at / 60_000)) ?? 0) + 1);
      expect(Math.max(...perMinute.values())).toBeLessThanOrEqual(2);
    } finally {
      await reader.stop();
    }
  });

  it('reads stale chargers at start, then spreads each charger’s reconcile read evenly over the interval', async () => {
    const { clock, reader, reads } = makeReader(60, 60);
    reader.start();
    await runFor(clock, 5_000);
    expect(new Set(reads.map((r) => r.id)).size).toBe(60); // the start pass: every state was stale
    const startReads = reads.length;
    const t0 = clock.now();
    await runFor(clock, 3 * 3_600_000);
    await reader.stop();
    const later = reads.slice(startReads).filter((r) => r.at >= t0 + 3_600_000);
    // Steady state: one read per charger per hour, about one a minute, never a burst.
    const perMinute = new Map<number, number>();
    for (const r of later)
      perMinute.set(Math.floor(r.at / 60_000), (perMinute.get(Math.floor(r.at / 60_000)) ?? 0) + 1);
    expect(Math.max(...perMinute.values())).toBeLessThanOrEqual(2);
    expect(later.length).toBeGreaterThanOrEqual(115);
    expect(later.length).toBeLessThanOrEqual(125);
    // The first reconciliation after the start pass may be spread up to 0.9 of a cadence later, never sooner
    // than a cadence; after it, a cadence apart.
    for (const times of readsByCharger(reads).values()) {
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(HOUR);
      expect(times[1]! - times[0]!).toBeLessThanOrEqual(1.9 * HOUR + 60_000);
      for (let i = 2; i < times.length; i++)
        expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(HOUR + 60_000);
    }
  });

  it('reconciliation spaced by what it reveals: quiet chargers double to 6 h, one that reveals stays hourly, one that starts revealing is back at once, across a restart', async () => {
    const { clock, reader, reads, revealing, another } = makeReader(60, 60, 360);
    revealing.add(id(0));
    reader.start();
    await runFor(clock, 24 * HOUR);
    await reader.stop();
    const t0 = clock.now() - 12 * HOUR;
    const late = reads.filter((r) => r.at >= t0);
    const perChargerHour = (rs: typeof reads, ids: Set<string>) =>
      rs.filter((r) => ids.has(r.id)).length / (ids.size * 12);
    const quiet = new Set(Array.from({ length: 59 }, (_, i) => id(i + 1)));
    // 6-hour spacing once learned: 1/6 of a call per charger-hour (the way there: 1 + 2 + 4 hours).
    expect(perChargerHour(late, quiet)).toBeGreaterThanOrEqual(1 / 6 - 0.02);
    expect(perChargerHour(late, quiet)).toBeLessThanOrEqual(1 / 6 + 0.02);
    // The charger whose reads keep finding something stays hourly.
    expect(late.filter((r) => r.id === id(0)).length).toBeGreaterThanOrEqual(11);
    // Restarted: the learned spacing holds (no hourly round of the whole fleet), and a quiet charger that
    // starts to reveal is read hourly again from its next read on.
    const before = reads.length;
    const restartedAt = clock.now();
    const again = another();
    revealing.add(id(1));
    again.start();
    await runFor(clock, 12 * HOUR);
    await again.stop();
    const after = reads.slice(before);
    expect(perChargerHour(after, new Set([...quiet].filter((q) => q !== id(1))))).toBeLessThanOrEqual(
      1 / 6 + 0.03,
    );
    const one = after.filter((r) => r.id === id(1)).map((r) => r.at);
    // Its next read came within 6 h; every read after it an hour apart.
    expect(one[0]! - restartedAt).toBeLessThanOrEqual(6 * HOUR);
    for (let i = 2; i < one.length; i++) expect(one[i]! - one[i - 1]!).toBeLessThanOrEqual(HOUR + 2 * 60_000);
    expect(one.length).toBeGreaterThanOrEqual(6);
  });

  it('a charger back online (a restart, a firmware update) is read about 20 s later, whatever its spacing', async () => {
    const { clock, reader, reads } = makeReader(3, 60, 360);
    reader.start();
    await runFor(clock, 30 * 60_000);
    const before = reads.length;
    const at = clock.now();
    reader.cameOnline(id(1));
    await runFor(clock, 60_000);
    await reader.stop();
    const after = reads.slice(before).filter((r) => r.id === id(1));
    expect(after).toHaveLength(1);
    expect(after[0]!.at - at).toBeGreaterThanOrEqual(MODE_CHANGE_FOLLOW_UP_MS);
    expect(after[0]!.at - at).toBeLessThanOrEqual(MODE_CHANGE_FOLLOW_UP_MS + 5_000);
  });

  it('a cold start whose inventory pass read the whole fleet in a burst: reconciliation spread over the hour after, and it stays spread across a restart', async () => {
    const { clock, reader, reads, another } = makeReader(120, 60);
    // The inventory pass sets a read of every charger going before the slots exist (prefetch), as at a first
    // start: 120 reads at the budget's pace, about 13 s.
    reader.prefetch(Array.from({ length: 120 }, (_, i) => id(i)));
    reader.start();
    await runFor(clock, 30_000);
    expect(new Set(reads.map((r) => r.id)).size).toBe(120);
    const t0 = clock.now();
    await runFor(clock, 3 * HOUR);
    await reader.stop();
    const window = (from: number, to: number) => reads.filter((r) => r.at >= from && r.at < to);
    // Over the second and third hours: one read every 30 s on average; no 19 s with more than 2, no minute with
    // more than 4 (the burst came back as 120 reads in 13 s before).
    const steady = window(t0 + HOUR, t0 + 3 * HOUR).map((r) => r.at);
    expect(steady.length).toBeGreaterThanOrEqual(235);
    expect(steady.length).toBeLessThanOrEqual(245);
    expect(maxInWindow(steady, 19_000)).toBeLessThanOrEqual(2);
    expect(maxInWindow(steady, 60_000)).toBeLessThanOrEqual(4);
    // Never a charger read twice within a cadence by reconciliation.
    for (const times of readsByCharger(reads).values())
      for (let i = 1; i < times.length; i++)
        expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(HOUR - 1_000);
    // Restarted ten seconds later: the slots are where they were (each a cadence after its last read).
    await runFor(clock, 10_000);
    const again = another();
    const before = reads.length;
    again.start();
    await runFor(clock, 2 * HOUR);
    await again.stop();
    const after = reads.slice(before).map((r) => r.at);
    expect(after.length).toBeGreaterThanOrEqual(235);
    expect(after.length).toBeLessThanOrEqual(245);
    expect(maxInWindow(after, 19_000)).toBeLessThanOrEqual(2);
    for (const times of readsByCharger(reads).values())
      for (let i = 1; i < times.length; i++)
        expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(HOUR - 1_000);
  });

  /** Mode changes of one charger at the given offsets (ms) from now, with the clock run between them. */
  async function modes(clock: VirtualClock, reader: StateReader, changes: [number, string][], from = '1') {
    const start = clock.now();
    let previous = from;
    const at: number[] = [];
    for (const [offset, value] of changes) {
      await runFor(clock, start + offset - clock.now());
      reader.modeChanged({ chargerId: id(0), value, previous });
      at.push(clock.now());
      previous = value;
    }
    return at;
  }

  const HOUR = 3_600_000;

  it('reads a session start and its end about 20 s after each, once per burst, and never twice within 15 s', async () => {
    const { clock, reader, reads } = makeReader(1, 60);
    reader.start();
    await runFor(clock, 2_000);
    const before = reads.length;
    // A car arrives (1 → 2 → 3), charges, pauses and resumes (3 → 5 → 3: no read), and leaves 40 min later (→ 1).
    const at = await modes(clock, reader, [
      [0, '2'],
      [3_000, '3'],
      [20 * 60_000, '5'],
      [21 * 60_000, '3'],
      [40 * 60_000, '1'],
    ]);
    await runFor(clock, 60_000);
    await reader.stop();
    const [arrived, , , , left] = at as [number, number, number, number, number];
    const extra = reads.slice(before).filter((r) => r.at < arrived + 20 * 60_000 || r.at > left);
    expect(extra).toHaveLength(2);
    // One read per burst (1 → 2 → 3 is one), about 20 s after its last boundary change.
    expect(extra[0]!.at - arrived).toBeGreaterThanOrEqual(MODE_CHANGE_FOLLOW_UP_MS);
    expect(extra[0]!.at - arrived).toBeLessThan(MODE_CHANGE_FOLLOW_UP_MS + 2_000);
    expect(extra[1]!.at - left).toBeGreaterThanOrEqual(MODE_CHANGE_FOLLOW_UP_MS);
    expect(extra[1]!.at - left).toBeLessThan(MODE_CHANGE_FOLLOW_UP_MS + 2_000);
  });

  it('a charger flapping 2 ↔ 3 every 30 s for an hour (load management) costs no extra read', async () => {
    const { clock, reader, reads } = makeReader(1, 60);
    reader.start();
    await modes(clock, reader, [[0, '2']]); // the session starts: one read
    await runFor(clock, 60_000);
    const before = reads.length;
    const flaps = Array.from(
      { length: 120 },
      (_, i) => [(i + 1) * 30_000, i % 2 === 0 ? '3' : '2'] as [number, string],
    );
    await modes(clock, reader, flaps, '2');
    const after = reads.length;
    await reader.stop();
    expect(after - before).toBeLessThanOrEqual(1); // the hourly reconciliation read, nothing else
  });

  it('a five-minute session: its start and its end are both read about 20 s after each', async () => {
    const { clock, reader, reads } = makeReader(1, 60);
    reader.start();
    await runFor(clock, 2_000);
    const before = reads.length;
    const [arrived, left] = (await modes(clock, reader, [
      [0, '2'],
      [5 * 60_000, '1'],
    ])) as [number, number];
    await runFor(clock, 60_000);
    await reader.stop();
    const after = reads.slice(before).map((r) => r.at);
    expect(after.map((t) => Math.floor((t - arrived) / 1000))).toEqual([
      20,
      Math.floor((left - arrived) / 1000) + 20,
    ]);
  });

  it('plugged in and out every 2 minutes for three hours: at most 6 calls per charger-hour, and the last end is read', async () => {
    const { clock, reader, reads } = makeReader(1, 60);
    reader.start();
    await runFor(clock, 5_000);
    const t0 = clock.now();
    const changes = Array.from(
      { length: 180 },
      (_, i) => [i * 60_000, i % 2 === 0 ? '2' : '1'] as [number, string],
    );
    // The time of the last change as the reader was told it (the virtual clock may have moved on since).
    const lastEnd = (await modes(clock, reader, changes)).at(-1)!;
    await runFor(clock, 15 * 60_000);
    await reader.stop();
    for (let hour = 1; hour < 3; hour++) {
      const inHour = reads.filter((r) => r.at >= t0 + hour * HOUR && r.at < t0 + (hour + 1) * HOUR);
      expect(inHour.length).toBeLessThanOrEqual(6);
    }
    expect(reads.some((r) => r.at >= lastEnd + MODE_CHANGE_FOLLOW_UP_MS)).toBe(true);
  });

  it('a normal day (a morning and an evening session, each paused a few times): about one call an hour, both ends read', async () => {
    const { clock, reader, reads } = makeReader(1, 60);
    reader.start();
    await runFor(clock, 5_000);
    const t0 = clock.now();
    const H = (h: number, m = 0) => h * HOUR + m * 60_000;
    const at = await modes(clock, reader, [
      [H(7, 30), '2'], // plugged in: connected, waiting
      [H(7, 31), '3'], // charging
      [H(8, 10), '2'], // paused by load management
      [H(8, 25), '3'],
      [H(9, 5), '2'],
      [H(9, 6), '1'], // unplugged: the session's end
      [H(18, 0), '2'],
      [H(18, 1), '3'],
      [H(19, 40), '2'],
      [H(19, 50), '3'],
      [H(21, 15), '2'],
      [H(21, 16), '1'],
    ]);
    await runFor(clock, t0 + 24 * HOUR - clock.now());
    await reader.stop();
    const day = reads.filter((r) => r.at >= t0 && r.at < t0 + 24 * HOUR);
    // 24 reconciliation reads, a few of which the session reads stand in for, plus a read after each start
    // and end: at most 28, at least 24.
    expect(day.length).toBeGreaterThanOrEqual(24);
    expect(day.length).toBeLessThanOrEqual(28);
    for (const end of [at[5]!, at[11]!])
      expect(day.some((r) => r.at >= end + MODE_CHANGE_FOLLOW_UP_MS && r.at < end + 30_000)).toBe(true);
  });

  it('gives every polled charger the cadence of the whole fleet, the first ones of a resync included', async () => {
    const { clock, reader, reads, s } = makeReader(200, 60);
    s.syncStatus.ensureAll([INST], 'connecting');
    reader.setPolling(INST, true); // as the inventory pass does, before the resync that adds the slots
    reader.start();
    await runFor(clock, 4 * 60_000);
    await reader.stop();
    const cadence = reader.pollIntervalMs();
    expect(cadence).toBe(44_445); // 200 chargers at half of 9/s
    const byCharger = new Map<string, number[]>();
    for (const r of reads) byCharger.set(r.id, [...(byCharger.get(r.id) ?? []), r.at]);
    let shortest = Infinity;
    for (const times of byCharger.values())
      for (let i = 1; i < times.length; i++) shortest = Math.min(shortest, times[i]! - times[i - 1]!);
    expect(shortest).toBeGreaterThanOrEqual(cadence / 2);
  });

  it('a restart whose live events connect after a few seconds reads no more than the steady reconciliation', async () => {
    const { clock, reader, reads, s, another } = makeReader(200, 60);
    reader.start();
    await runFor(clock, 3 * HOUR); // steady state: each charger read once an hour, spread
    await reader.stop();
    await runFor(clock, 10_000);
    // Started again: `connecting` (polling) for 3 s, then connected.
    const before = reads.length;
    const again = another();
    s.syncStatus.ensureAll([INST], 'connecting');
    again.setPolling(INST, true);
    again.start();
    await runFor(clock, 3_000);
    again.setPolling(INST, false);
    await runFor(clock, 10 * 60_000);
    await again.stop();
    // 200 chargers an hour: about 33 in 10 minutes, plus what 3 s of polling read (at most 4.5/s).
    const n = reads.length - before;
    expect(n).toBeGreaterThanOrEqual(25);
    expect(n).toBeLessThanOrEqual(33 + 14 + 5);
  });

  it('a restart over state kept fresh by live events alone (no read on record) reads no more than the steady reconciliation', async () => {
    const { clock, reader, reads, s } = makeReader(200, 60);
    // What live events left behind over the last hour: every charger heard from, spread, none read.
    for (let i = 0; i < 200; i++) {
      await runFor(clock, 18_000);
      s.observations.apply([
        { chargerId: id(i), stateId: 710, value: '3', observedAt: clock.now(), source: 'event' },
      ]);
    }
    s.syncStatus.ensureAll([INST], 'connecting');
    reader.setPolling(INST, true);
    reader.start();
    await runFor(clock, 3_000);
    reader.setPolling(INST, false);
    await runFor(clock, 10 * 60_000);
    await reader.stop();
    // The hour's oldest ones come due: about 33 in 10 minutes, plus what 3 s of polling read (at most 4.5/s).
    expect(reads.length).toBeGreaterThanOrEqual(25);
    expect(reads.length).toBeLessThanOrEqual(33 + 14 + 5);
  });

  it('a charger whose state answers 404 is not retried every few minutes, is reported once, and is dropped with the inventory', async () => {
    const { clock, reader, reads, s, gone, warnings, snapshot } = makeReader(3, 60);
    reader.start();
    try {
      await runFor(clock, 5_000); // the start pass
      const removed = id(2);
      gone.add(removed);
      await runFor(clock, 3 * HOUR);
      const of = (cid: string) => reads.filter((r) => r.id === cid);
      // Its slot reads it once an hour (the inventory pass that would drop it is not run yet): no 5-minute
      // retries, and one warning while it lasts, not one per read (the other chargers' reads succeed between).
      expect(of(removed).length).toBeLessThanOrEqual(1 + 4);
      expect(
        warnings.filter((w) => /state reads are failing for 1 charger\(s\): refused \(404\)/.test(w)),
      ).toHaveLength(1);
      // The inventory pass drops it: nothing is read for it any more, not even a queued retry.
      s.inventory.replace(snapshot(2), clock.now());
      reader.resync();
      const before = of(removed).length;
      await runFor(clock, 3 * HOUR);
      expect(of(removed).length).toBe(before);
      expect(of(id(0)).length).toBeGreaterThanOrEqual(6);
    } finally {
      await reader.stop(); // a failed expectation must not leave the workers running on the virtual clock
    }
  });

  it('an inventory pass does not end a problem of failing reads that has nothing to do with refused chargers', async () => {
    const { clock, reader, failing, problems } = makeReader(2, 60);
    failing.add(id(0));
    failing.add(id(1));
    reader.start();
    try {
      await runFor(clock, 5_000);
      expect(problems.has('state')).toBe(true);
      reader.resync(); // as after an inventory pass
      expect(problems.has('state')).toBe(true);
    } finally {
      await reader.stop();
    }
  });

  it('polls as often as the budget allows while live events are down, and says so', async () => {
    const { clock, reader, reads, s } = makeReader(20, 60);
    s.syncStatus.ensureAll([INST], 'connecting');
    reader.start();
    reader.setPolling(INST, true);
    await runFor(clock, 5 * 60_000);
    await reader.stop();
    expect(reader.pollIntervalMs()).toBe(15_000); // 20 chargers: the 15 s cache is the limit
    const perCharger = reads.filter((r) => r.id === id(3)).length;
    expect(perCharger).toBeGreaterThanOrEqual(18);
    expect(s.syncStatus.all()[0]?.detail).toMatch(/polling each charger every 15 s/);
  });
});
