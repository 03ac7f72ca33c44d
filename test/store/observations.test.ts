/**
 * The observation store's contract (CONTRACT §3, §9), one set of cases for both stores: SQLite's
 * ObservationStore and PostgreSQL's PgObservationStore (against the test run's real server; said skipped where
 * there is none).
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { Observation } from '../../src/observation.js';
import { openDatabase } from '../../src/store/database.js';
import { InventoryStore } from '../../src/store/inventory.js';
import { type ApplyResult, ObservationStore } from '../../src/store/observations.js';
import { migratePostgres } from '../../src/store/postgres/migrate.js';
import { notifyPayload, PgObservationStore } from '../../src/store/postgres/observations.js';
import { openPool } from '../../src/store/postgres/pool.js';
import { tempDir } from '../helpers.js';
import { freshSchema, pgUrl } from '../pg.js';

const C = '93d603a7-ff53-4ed8-8dd6-f79c94819458';
const T0 = Date.parse('2024-01-05T13:10:10.837Z');

type Row = Record<string, unknown>;

/** What the cases need of a store, the same for both. */
interface Backend {
  apply(
    batch: Observation[],
    options?: { compareValues?: (stateId: number) => boolean },
  ): Promise<ApplyResult>;
  current(stateId: number): Promise<Row | undefined>;
  history(): Promise<number>;
  /** The charger in the inventory with this device type, and these names from the constants. */
  known(deviceType: number, names: { deviceType: number; stateId: number; name: string }[]): Promise<void>;
  tick(ms: number): void;
  pruneHistory?(): number;
}

function sqlite(historyDays: number): Backend {
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  let now = T0 + 60_000;
  const store = new ObservationStore(db, { historyDays, now: () => now });
  return {
    apply: async (batch, options) => store.apply(batch, options),
    current: async (stateId) =>
      db.prepare('SELECT * FROM charger_state WHERE charger_id = ? AND state_id = ?').get(C, stateId) as
        | Row
        | undefined,
    history: async () =>
      (db.prepare('SELECT count(*) AS n FROM charger_state_history').get() as { n: number }).n,
    known: async (deviceType, names) => {
      const inventory = new InventoryStore(db);
      inventory.replaceStateNames(names);
      inventory.upsertCharger(
        {
          id: C,
          installationId: null,
          circuitId: null,
          deviceId: 'ZAP049387',
          name: 'Go',
          deviceType,
          data: {},
        },
        T0,
      );
      store.invalidate();
    },
    tick: (ms) => {
      now += ms;
    },
    pruneHistory: () => store.pruneHistory(),
  };
}

const pools: pg.Pool[] = [];
afterAll(async () => {
  for (const p of pools.splice(0)) await p.end();
});

async function postgres(historyDays: number): Promise<Backend> {
  const schema = freshSchema('obs');
  const url = new URL(pgUrl!);
  const password = decodeURIComponent(url.password);
  url.password = '';
  const pool = openPool({ url: url.toString(), password, schema });
  pools.push(pool);
  await migratePostgres(pool, schema);
  let now = T0 + 60_000;
  const store = new PgObservationStore(pool, schema, { historyDays, now: () => now });
  return {
    apply: (batch, options) => store.apply(batch, options),
    current: async (stateId) =>
      (
        await pool.query(
          `SELECT charger_id, state_id, state_name, value, observed_at, received_at, source
           FROM ${schema}.charger_state WHERE charger_id = $1 AND state_id = $2`,
          [C, stateId],
        )
      ).rows[0] as Row | undefined,
    history: async () =>
      (await pool.query(`SELECT count(*) AS n FROM ${schema}.charger_state_history`)).rows[0].n as number,
    known: async (deviceType, names) => {
      await pool.query(`DELETE FROM ${schema}.state_names`);
      for (const n of names)
        await pool.query(`INSERT INTO ${schema}.state_names VALUES ($1, $2, $3)`, [
          n.deviceType,
          n.stateId,
          n.name,
        ]);
      await pool.query(
        `INSERT INTO ${schema}.chargers (id, device_id, name, device_type, data, first_seen_at, last_seen_at)
         VALUES ($1, 'ZAP049387', 'Go', $2, '{}', now(), now())`,
        [C, deviceType],
      );
      store.invalidate();
    },
    tick: (ms) => {
      now += ms;
    },
  };
}

const obs = (stateId: number, value: string | null, at: number, source: Observation['source'] = 'event') =>
  ({ chargerId: C, stateId, value, observedAt: at, source }) satisfies Observation;

const BACKENDS: [string, ((historyDays: number) => Backend | Promise<Backend>) | undefined][] = [
  ['SQLite', sqlite],
  ['PostgreSQL', pgUrl ? postgres : undefined],
];

describe.each(BACKENDS)('applying observations (%s)', (_name, make) => {
  const setup = (historyDays = 7) => make!(historyDays);

  it.runIf(make)('keeps the newest value whatever the order, and replays change nothing', async () => {
    const s = await setup();
    const batch = [obs(710, '1', T0), obs(710, '3', T0 + 2000), obs(710, '2', T0 + 1000)];
    await s.apply(batch);
    expect(await s.current(710)).toMatchObject({
      value: '3',
      observed_at: '2024-01-05T13:10:12.837Z',
      source: 'event',
    });
    expect(await s.history()).toBe(3);
    const replay = await s.apply([...batch].reverse());
    expect(replay.applied).toBe(0);
    expect(replay.history).toBe(0);
    expect(await s.current(710)).toMatchObject({ value: '3' });
    expect(await s.history()).toBe(3);
  });

  it.runIf(make)(
    'lets an older observation from another source add history but never replace the current value',
    async () => {
      const s = await setup();
      await s.apply([obs(513, '7400', T0 + 5000, 'event')]);
      const r = await s.apply([obs(513, '0', T0, 'poll')]);
      expect(r.applied).toBe(0);
      expect(r.history).toBe(1);
      expect(await s.current(513)).toMatchObject({ value: '7400', source: 'event' });
      await s.apply([obs(513, '3700', T0 + 6000, 'poll')]);
      expect(await s.current(513)).toMatchObject({ value: '3700', source: 'poll' });
      expect(await s.history()).toBe(3);
    },
  );

  it.runIf(make)('leaves the row as it is for an observation with the same observed_at', async () => {
    const s = await setup();
    await s.apply([obs(553, '1.5', T0, 'event')]);
    const before = await s.current(553);
    s.tick(5000);
    expect((await s.apply([obs(553, '9.9', T0, 'poll')])).applied).toBe(0);
    expect(await s.current(553)).toEqual(before);
  });

  it.runIf(make)('stores null for an absent value and "" for an empty one', async () => {
    const s = await setup();
    await s.apply([obs(-1, null, T0), obs(721, '', T0)]);
    expect((await s.current(-1))?.value).toBeNull();
    expect((await s.current(721))?.value).toBe('');
  });

  it.runIf(make)('names states from the charger device-type schema, else the global name', async () => {
    const s = await setup();
    await s.known(4, [
      { deviceType: -1, stateId: 202, name: 'TemperatureInternal6' },
      { deviceType: 4, stateId: 202, name: 'TemperatureEMeterPhase1' },
      { deviceType: -1, stateId: 710, name: 'ChargerOperationMode' },
    ]);
    const r = await s.apply([obs(202, '21.5', T0), obs(710, '1', T0), obs(99999, 'x', T0)]);
    expect(r.unknownChargers).toEqual([]);
    expect((await s.current(202))?.state_name).toBe('TemperatureEMeterPhase1');
    expect((await s.current(710))?.state_name).toBe('ChargerOperationMode');
    expect((await s.current(99999))?.state_name).toBeNull();
  });

  it.runIf(make)(
    'reports operation-mode changes, chargers coming online, and chargers the inventory does not know',
    async () => {
      const s = await setup();
      const r1 = await s.apply([obs(710, '1', T0)]);
      expect(r1.modeChanges).toEqual([{ chargerId: C, stateId: 710, value: '1', previous: undefined }]);
      expect(r1.unknownChargers).toEqual([C]);
      expect((await s.apply([obs(710, '1', T0 + 1)])).modeChanges).toEqual([]);
      expect((await s.apply([obs(710, '3', T0 + 2)])).modeChanges).toHaveLength(1);
      // Two changes in one batch are two changes.
      expect(
        (await s.apply([obs(710, '5', T0 + 3), obs(710, '1', T0 + 4)])).modeChanges.map((c) => c.value),
      ).toEqual(['5', '1']);
      await s.apply([obs(-2, '0', T0)]);
      expect((await s.apply([obs(-2, '1', T0 + 5)])).cameOnline).toEqual([C]);
    },
  );

  it.runIf(make)('counts the values a read brought that were not stored', async () => {
    const s = await setup();
    await s.apply([obs(510, '16', T0), obs(911, '3.1', T0)]);
    const all = () => true;
    const same = await s.apply([obs(510, '16', T0 + 10), obs(911, '3.1', T0 + 10)], { compareValues: all });
    expect(same.newValues).toBe(0);
    expect(same.applied).toBe(2);
    const changed = await s.apply([obs(510, '32', T0 + 20), obs(911, '3.1', T0 + 20)], {
      compareValues: all,
    });
    expect(changed.newValues).toBe(1);
  });

  it.runIf(make)(
    'keeps no history with ZAPTEC_HISTORY_DAYS=0, and none older than the retention',
    async () => {
      const none = await setup(0);
      await none.apply([obs(710, '1', T0)]);
      expect(await none.history()).toBe(0);
      expect((await none.current(710))?.value).toBe('1');

      const week = await setup(7);
      await week.apply([obs(710, '1', T0), obs(710, '2', T0 - 8 * 86_400_000)]);
      expect(await week.history()).toBe(1);
      if (week.pruneHistory) {
        week.tick(8 * 86_400_000);
        expect(week.pruneHistory()).toBe(1);
        expect((await week.current(710))?.value).toBe('1');
      }
    },
  );

  it.runIf(make)('applies a whole batch or nothing', async () => {
    const s = await setup();
    const bad = { ...obs(710, '1', T0), source: 'carrier-pigeon' } as unknown as Observation;
    await expect(s.apply([obs(513, '1', T0), bad])).rejects.toThrow();
    expect(await s.current(513)).toBeUndefined();
  });
});

describe.runIf(pgUrl)('PostgreSQL: NOTIFY after each commit that changed state (CONTRACT §9)', () => {
  it('a LISTENing consumer gets the changed chargers’ ids once the batch is committed, and nothing for a replay', async () => {
    const schema = freshSchema('notify');
    const url = new URL(pgUrl!);
    const password = decodeURIComponent(url.password);
    url.password = '';
    const pool = openPool({ url: url.toString(), password, schema });
    pools.push(pool);
    await migratePostgres(pool, schema);
    const listener = new pg.Client({ connectionString: pgUrl });
    await listener.connect();
    const heard: { channel: string; payload: string | undefined }[] = [];
    listener.on('notification', (n) => heard.push({ channel: n.channel, payload: n.payload }));
    await listener.query(`LISTEN ${schema}_state`);
    const store = new PgObservationStore(pool, schema, { historyDays: 7, now: () => T0 });
    const other = 'aaaaaaaa-0000-4000-8000-000000000001';
    await store.apply([obs(710, '3', T0), { ...obs(513, '7000', T0), chargerId: other }, obs(513, '1', T0)]);
    await store.apply([obs(710, '3', T0)]); // a replay changes nothing: no notification
    await new Promise((r) => setTimeout(r, 200));
    await listener.end();
    expect(heard).toEqual([{ channel: `${schema}_state`, payload: JSON.stringify([C, other]) }]);
    // A batch of thousands of chargers: "*" instead of an array that would not fit.
    expect(
      notifyPayload(Array.from({ length: 300 }, (_, i) => `${C.slice(0, -4)}${String(i).padStart(4, '0')}`)),
    ).toBe('"*"');
  });
});
