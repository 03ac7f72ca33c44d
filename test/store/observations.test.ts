import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Observation } from '../../src/observation.js';
import { openDatabase } from '../../src/store/database.js';
import { InventoryStore } from '../../src/store/inventory.js';
import { ObservationStore } from '../../src/store/observations.js';
import { tempDir } from '../helpers.js';

const C = '93d603a7-ff53-4ed8-8dd6-f79c94819458';
const T0 = Date.parse('2024-01-05T13:10:10.837Z');

function setup(historyDays = 7) {
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  let now = T0 + 60_000;
  const store = new ObservationStore(db, { historyDays, now: () => now });
  return {
    db,
    store,
    tick: (ms: number) => {
      now += ms;
    },
    current: (stateId: number) =>
      db.prepare('SELECT * FROM charger_state WHERE charger_id = ? AND state_id = ?').get(C, stateId) as
        | Record<string, unknown>
        | undefined,
    history: () => db.prepare('SELECT count(*) AS n FROM charger_state_history').get() as { n: number },
  };
}

const obs = (stateId: number, value: string | null, at: number, source: Observation['source'] = 'event') =>
  ({ chargerId: C, stateId, value, observedAt: at, source }) satisfies Observation;

describe('applyObservations', () => {
  it('keeps the newest value whatever the order, and replays change nothing', () => {
    const { store, current, history } = setup();
    const batch = [obs(710, '1', T0), obs(710, '3', T0 + 2000), obs(710, '2', T0 + 1000)];
    store.apply(batch);
    expect(current(710)).toMatchObject({
      value: '3',
      observed_at: '2024-01-05T13:10:12.837Z',
      source: 'event',
    });
    expect(history().n).toBe(3);
    const replay = store.apply([...batch].reverse());
    expect(replay.applied).toBe(0);
    expect(replay.history).toBe(0);
    expect(current(710)).toMatchObject({ value: '3' });
    expect(history().n).toBe(3);
  });

  it('lets an older observation from another source add history but never replace the current value', () => {
    const { store, current, history } = setup();
    store.apply([obs(513, '7400', T0 + 5000, 'event')]);
    const r = store.apply([obs(513, '0', T0, 'poll')]);
    expect(r.applied).toBe(0);
    expect(r.history).toBe(1);
    expect(current(513)).toMatchObject({ value: '7400', source: 'event' });
    store.apply([obs(513, '3700', T0 + 6000, 'poll')]);
    expect(current(513)).toMatchObject({ value: '3700', source: 'poll' });
    expect(history().n).toBe(3);
  });

  it('leaves the row as it is for an observation with the same observed_at', () => {
    const { store, current, tick } = setup();
    store.apply([obs(553, '1.5', T0, 'event')]);
    const before = current(553);
    tick(5000);
    expect(store.apply([obs(553, '9.9', T0, 'poll')]).applied).toBe(0);
    expect(current(553)).toEqual(before);
  });

  it('stores null for an absent value and "" for an empty one', () => {
    const { store, current } = setup();
    store.apply([obs(-1, null, T0), obs(721, '', T0)]);
    expect(current(-1)?.value).toBeNull();
    expect(current(721)?.value).toBe('');
  });

  it('names states from the charger device-type schema, else the global name', () => {
    const { db, store, current } = setup();
    const inventory = new InventoryStore(db);
    inventory.replaceStateNames([
      { deviceType: -1, stateId: 202, name: 'TemperatureInternal6' },
      { deviceType: 4, stateId: 202, name: 'TemperatureEMeterPhase1' },
      { deviceType: -1, stateId: 710, name: 'ChargerOperationMode' },
    ]);
    inventory.upsertCharger(
      {
        id: C,
        installationId: null,
        circuitId: null,
        deviceId: 'ZAP049387',
        name: 'Go',
        deviceType: 4,
        data: {},
      },
      T0,
    );
    store.invalidate();
    store.apply([obs(202, '21.5', T0), obs(710, '1', T0), obs(99999, 'x', T0)]);
    expect(current(202)?.state_name).toBe('TemperatureEMeterPhase1');
    expect(current(710)?.state_name).toBe('ChargerOperationMode');
    expect(current(99999)?.state_name).toBeNull();
  });

  it('reports operation-mode changes and chargers the inventory does not know', () => {
    const { store } = setup();
    const r1 = store.apply([obs(710, '1', T0)]);
    expect(r1.modeChanges).toEqual([{ chargerId: C, stateId: 710, value: '1', previous: undefined }]);
    expect(r1.unknownChargers).toEqual([C]);
    expect(store.apply([obs(710, '1', T0 + 1)]).modeChanges).toEqual([]);
    expect(store.apply([obs(710, '3', T0 + 2)]).modeChanges).toHaveLength(1);
  });

  it('keeps no history with ZAPTEC_HISTORY_DAYS=0 and prunes what is older than the retention', () => {
    const none = setup(0);
    none.store.apply([obs(710, '1', T0)]);
    expect(none.history().n).toBe(0);
    expect(none.current(710)?.value).toBe('1');

    const week = setup(7);
    week.store.apply([obs(710, '1', T0), obs(710, '2', T0 - 8 * 86_400_000)]);
    expect(week.history().n).toBe(1);
    week.tick(8 * 86_400_000);
    expect(week.store.pruneHistory()).toBe(1);
    expect(week.current(710)?.value).toBe('1');
  });

  it('applies a whole batch or nothing', () => {
    const { store, current } = setup();
    const bad = { ...obs(710, '1', T0), source: 'carrier-pigeon' } as unknown as Observation;
    expect(() => store.apply([obs(513, '1', T0), bad])).toThrow();
    expect(current(513)).toBeUndefined();
  });
});
