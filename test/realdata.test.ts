/**
 * issue 17 §3: payloads other people recorded from the real Zaptec cloud (../shared/realdata beside the
 * checkout, never copied here) go through the production path — served over loopback HTTP to the real
 * client, or decoded from the real MC-NBFX bytes — and land with exact values, names and times.
 * Where the folder is absent the tests say so and are skipped.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HttpStatusError } from '../src/http/errors.js';
import { zaptecProfile } from '../src/http/profiles.js';
import { parseRateLimit } from '../src/http/rate-limit-headers.js';
import { createLogger } from '../src/log.js';
import type { Observation } from '../src/observation.js';
import { Fleet } from '../src/simulator/fleet.js';
import { RestSimulator, SIM_CONSTANTS } from '../src/simulator/rest.js';
import { DaemonRecord } from '../src/store/daemon-row.js';
import { openDatabase } from '../src/store/database.js';
import { InventoryStore } from '../src/store/inventory.js';
import { ObservationStore } from '../src/store/observations.js';
import { SyncStatusStore } from '../src/store/sync-status.js';
import { InventorySync } from '../src/sync/inventory.js';
import { decodeObservation, toObservations } from '../src/zaptec/message.js';
import { tempDir } from './helpers.js';
import { simulatorClient } from './sim-client.js';

const REALDATA = fileURLToPath(new URL('../../shared/realdata/', import.meta.url));
const present = existsSync(join(REALDATA, 'rest-samples.json'));
if (!present)
  console.warn(`realdata tests skipped: ${REALDATA} is not beside the checkout (CI has it; see the README)`);

const quiet = createLogger({ level: 'silent' });
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Sample {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  source: string;
}
interface ApiItem {
  ChargerId: string;
  StateId: number;
  Timestamp: string;
  ValueAsString?: string | null;
}

const read = <T>(name: string): T => JSON.parse(readFileSync(join(REALDATA, name), 'utf8')) as T;

/**
 * The sources anonymised ids into shapes the cloud never sends (`12345678-90ab-cdef-1234567890ab`, 11-digit
 * groups): each such id gets a GUID of its own, so the rest of the response is tested as it was recorded.
 */
function withGuids(items: ApiItem[]): ApiItem[] {
  const ids = new Map<string, string>();
  return items.map((o) => {
    if (GUID.test(o.ChargerId)) return o;
    if (!ids.has(o.ChargerId))
      ids.set(o.ChargerId, `00000000-0000-4000-8000-${String(ids.size + 1).padStart(12, '0')}`);
    return { ...o, ChargerId: ids.get(o.ChargerId)! };
  });
}

/** The contract's time rule, written independently of the code: UTC without an offset, truncated to ms. */
function expectedTime(text: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$/.exec(text);
  if (!m) throw new Error(`unexpected timestamp in a sample: ${text}`);
  const ms = (m[2] ?? '').slice(0, 3).padEnd(3, '0');
  return new Date(`${m[1]}.${ms}${m[3] && m[3] !== 'Z' ? m[3] : 'Z'}`).toISOString();
}

/** What charger_state must hold: per charger and state the newest observation, the first one on a tie. */
function expectedRows(items: ApiItem[]): Map<string, { value: string | null; observed_at: string }> {
  const rows = new Map<string, { value: string | null; observed_at: string }>();
  for (const o of items) {
    const key = `${o.ChargerId.toLowerCase()}:${o.StateId}`;
    const row = { value: o.ValueAsString ?? null, observed_at: expectedTime(o.Timestamp) };
    const had = rows.get(key);
    if (!had || had.observed_at < row.observed_at) rows.set(key, row);
  }
  return rows;
}

function stored(db: ReturnType<typeof openDatabase>) {
  const rows = new Map<string, { value: string | null; observed_at: string }>();
  for (const r of db.prepare('SELECT charger_id, state_id, value, observed_at FROM charger_state').all() as {
    charger_id: string;
    state_id: number;
    value: string | null;
    observed_at: string;
  }[])
    rows.set(`${r.charger_id}:${r.state_id}`, { value: r.value, observed_at: r.observed_at });
  return rows;
}

async function simulatorWithClient() {
  const sim = new RestSimulator({
    fleet: new Fleet({ seed: 1, installations: 1, chargersPerInstallation: 1 }),
  });
  await sim.start();
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  const client = simulatorClient(sim, {
    db,
    clock: { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))) },
    timeouts: { headersMs: 2_000, bodyMs: 2_000, attemptMs: 4_000 },
  });
  const close = async () => {
    await client.close();
    await sim.stop();
    db.close();
  };
  return { sim, db, client, close };
}

describe.skipIf(!present)('real /state responses', () => {
  const samples = present
    ? read<Record<string, Sample[]>>('rest-samples.json')['GET /api/chargers/{id}/state']!
    : [];

  it.each(samples.filter((s) => s.status === 200).map((s, i) => [i, s] as const))(
    'response %i lands whole, with exact values and times, through the real client',
    async (_i, sample) => {
      const items = withGuids(sample.body as ApiItem[]);
      const { sim, db, client, close } = await simulatorWithClient();
      try {
        sim.faults.push({ path: /\/state$/, status: 200, body: JSON.stringify(items), times: 1 });
        const chargerId = items[0]!.ChargerId;
        const answer = await client.api.state(chargerId);
        expect(answer).toHaveLength(items.length); // no item of a real response is dropped
        const store = new ObservationStore(db, { historyDays: 36500, now: () => Date.now() });
        store.apply(toObservations(answer, 'poll'));
        expect(stored(db)).toEqual(expectedRows(items));
        const history = db.prepare('SELECT count(*) AS n FROM charger_state_history').get() as { n: number };
        const distinct = new Set(
          items.map((o) => `${o.ChargerId.toLowerCase()}:${o.StateId}:${expectedTime(o.Timestamp)}`),
        );
        expect(history.n).toBe(distinct.size);
      } finally {
        await close();
      }
    },
  );

  it('a recorded 500 with an empty body is a server error, retried, then reported with its status', async () => {
    const failed = samples.find((s) => s.status === 500)!;
    const { sim, client, close } = await simulatorWithClient();
    try {
      sim.faults.push({
        path: /\/state$/,
        status: 500,
        body: typeof failed.body === 'string' ? failed.body : '',
        times: 10,
      });
      const err = await client.api.state('de522271-91f5-45b8-916b-07e258ff07d2').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpStatusError);
      expect((err as HttpStatusError).status).toBe(500);
      expect(sim.requests.filter((r) => r.path.endsWith('/state')).length).toBeGreaterThan(1);
    } finally {
      await close();
    }
  });
});

describe.skipIf(!present)('real Service Bus frames', () => {
  const frames = present
    ? read<{ id: string; bytes_base64?: string; decoded_json_text: string; strict_nbfx_decode: string }[]>(
        'servicebus-frames.json',
      ).filter((f) => f.bytes_base64 && f.strict_nbfx_decode === 'ok')
    : [];

  it('finds both real MC-NBFX frames', () => {
    expect(frames.map((f) => f.id)).toEqual(['sb-01', 'sb-02']);
  });

  it.each(frames.map((f) => [f.id, f] as const))(
    '%s decodes and lands with its exact value and time',
    (_id, frame) => {
      // The source replaced the ChargerId with x's of the same length: a GUID goes back in, byte for byte.
      const guid = 'c0ffee00-1234-4abc-8def-0123456789ab';
      const bytes = Buffer.from(
        Buffer.from(frame.bytes_base64!, 'base64')
          .toString('latin1')
          .replace('xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx', guid),
        'latin1',
      );
      const recorded = JSON.parse(frame.decoded_json_text) as ApiItem & { DeviceType: number };
      const o: Observation = decodeObservation(bytes);
      expect(o).toMatchObject({
        chargerId: guid,
        stateId: recorded.StateId,
        value: recorded.ValueAsString,
        source: 'event',
      });
      const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
      new ObservationStore(db, { historyDays: 36500, now: () => Date.now() }).apply([o]);
      expect(stored(db)).toEqual(expectedRows([{ ...recorded, ChargerId: guid }]));
      db.close();
    },
  );
});

describe.skipIf(!present)('every real /api/constants snapshot', () => {
  const files = present
    ? [
        'constants.json',
        ...readdirSync(join(REALDATA, 'constants-history')).map((f) => `constants-history/${f}`),
      ]
    : [];

  it.each(files.map((f) => [f] as const))(
    '%s names every state of every device type it describes',
    async (file) => {
      const constants = read<{
        Observations?: Record<string, number>;
        Schema?: Record<string, { DeviceType?: number; ObservationIds?: Record<string, number> }>;
      }>(file);
      const { sim, db, client, close } = await simulatorWithClient();
      try {
        sim.faults.push({
          path: /^\/api\/constants$/,
          status: 200,
          body: JSON.stringify(constants),
          times: 1,
        });
        const inventory = new InventoryStore(db);
        const daemon = new DaemonRecord(db);
        daemon.started('test', 1, Date.now());
        const sync = new InventorySync({
          api: client.api,
          store: inventory,
          observations: new ObservationStore(db, { historyDays: 7, now: () => Date.now() }),
          daemon,
          syncStatus: new SyncStatusStore(db),
          clock: { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
          log: quiet,
          cronExpression: '7 * * * *',
          followed: undefined,
        });
        expect(await sync.refresh('test')).toBe(true);
        await sync.stop();
        const names = db.prepare('SELECT device_type, state_id, name FROM state_names').all() as {
          device_type: number;
          state_id: number;
          name: string;
        }[];
        const has = (deviceType: number, stateId: number) =>
          names.find((n) => n.device_type === deviceType && n.state_id === stateId)?.name;
        for (const [name, id] of Object.entries(constants.Observations ?? {})) expect(has(-1, id)).toBe(name);
        for (const schema of Object.values(constants.Schema ?? {})) {
          if (schema.DeviceType === undefined) continue;
          for (const [name, id] of Object.entries(schema.ObservationIds ?? {}))
            expect(has(schema.DeviceType, id)).toBe(name);
        }
        expect(has(-1, 710)).toBe('ChargerOperationMode');
        expect(has(-1, 723)).toBe('CompletedSession');
        // What 710's values mean, from its ChargerOperationModes map (issue 26 §5: `state` shows it).
        const meanings = db
          .prepare("SELECT value, meaning FROM state_values WHERE state_id = 710 AND value IN ('1', '3')")
          .all();
        expect(meanings).toEqual([
          { value: '1', meaning: 'Disconnected' },
          { value: '3', meaning: 'Connected_Charging' },
        ]);
      } finally {
        await close();
      }
    },
  );
});

describe.skipIf(!present)('recorded errors and headers', () => {
  const samples = present ? read<Record<string, Sample[]>>('rest-samples.json') : {};

  it('the rate-limit headers of real answers (X-Rate-Limit-Limit "30m" is a window) pause nothing', () => {
    const profile = zaptecProfile(600);
    const withHeaders = Object.values(samples)
      .flat()
      .filter((s) => s.headers && s.status < 429);
    expect(withHeaders.length).toBeGreaterThan(0);
    for (const s of withHeaders) {
      const info = parseRateLimit(s.status, s.headers!, Date.parse('2023-09-28T15:59:00Z'), {
        ...profile.headers,
        ceilingMs: 120_000,
      });
      expect(info.exhausted).toBeFalsy();
    }
  });

  it('a hierarchy answered 204 keeps the circuits, a token endpoint answering nginx 503 is not a refused password', async () => {
    const { sim, client, close } = await simulatorWithClient();
    try {
      sim.faults.push({ path: /\/hierarchy$/, status: 204, body: '', times: 1 });
      expect(await client.api.hierarchy('5ad1a6b7-2d4b-4ae5-b0f5-0b5a55b7c6d1')).toBeUndefined();
      sim.faults.push({
        path: /^\/oauth\/token$/,
        status: 503,
        body: '<html>503 Service Temporarily Unavailable</html>',
        times: 1,
      });
      await client.tokens.retryLogin();
      expect(client.tokens.refusal).toBeUndefined();
    } finally {
      await close();
    }
  });
});

describe.skipIf(!present)("the simulator's constants", () => {
  it("carry Zaptec's real ids and names, per device type too", () => {
    const real = read<{
      Observations: Record<string, number>;
      Schema: Record<string, { DeviceType: number; ObservationIds: Record<string, number> }>;
      ChargerOperationModes: Record<string, number>;
    }>('constants.json');
    for (const [name, id] of Object.entries(SIM_CONSTANTS.Observations))
      expect([name, real.Observations[name]]).toEqual([name, id]);
    for (const [schemaName, schema] of Object.entries(SIM_CONSTANTS.Schema)) {
      expect(real.Schema[schemaName]?.DeviceType).toBe(schema.DeviceType);
      for (const [name, id] of Object.entries(schema.ObservationIds))
        expect([schemaName, name, real.Schema[schemaName]!.ObservationIds[name]]).toEqual([
          schemaName,
          name,
          id,
        ]);
    }
    expect(SIM_CONSTANTS.ChargerOperationModes).toEqual(real.ChargerOperationModes);
  });
});
