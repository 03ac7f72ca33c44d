import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../src/http/errors.js';
import { zaptecProfile } from '../../src/http/profiles.js';
import { createLogger } from '../../src/log.js';
import { Fleet } from '../../src/simulator/fleet.js';
import { RestSimulator } from '../../src/simulator/rest.js';
import { openDatabase } from '../../src/store/database.js';
import { SqliteBudgetLedger } from '../../src/store/sqlite/budget-ledger.js';
import { systemClock } from '../../src/time.js';
import { createZaptecClient, type ZaptecClient } from '../../src/zaptec/client.js';
import { tempDir } from '../helpers.js';

const running: { sim: RestSimulator; client: ZaptecClient }[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.client.close();
    await r.sim.stop();
  }
});

async function setup(
  fleetOptions = { installations: 3, chargersPerInstallation: 2 },
  simOptions = {},
  clientOptions: Partial<Parameters<typeof createZaptecClient>[0]> = {},
) {
  const fleet = new Fleet({ ...fleetOptions, seed: 7 });
  const sim = new RestSimulator({ fleet, ...simOptions });
  const url = await sim.start();
  const lines: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(c, _e, cb) {
        lines.push(String(c));
        cb();
      },
    }),
  });
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  const client = clientOn(url, db, log, { profile: zaptecProfile(600), ...clientOptions });
  running.push({ sim, client });
  return { fleet, sim, client, db, lines };
}

function clientOn(
  apiUrl: string,
  db: ReturnType<typeof openDatabase>,
  log: ReturnType<typeof createLogger>,
  extra: Partial<Parameters<typeof createZaptecClient>[0]> = {},
): ZaptecClient {
  return createZaptecClient({
    apiUrl,
    username: 'demo@example.com',
    password: 'demo-password',
    requestsPerMinute: 600,
    version: '9.9.9',
    ledger: new SqliteBudgetLedger(db),
    clock: systemClock,
    log,
    ...extra,
  });
}

/** A second client on the same database: what a restarted daemon would be. */
function restarted(sim: RestSimulator, db: ReturnType<typeof openDatabase>): ZaptecClient {
  return clientOn(sim.url, db, createLogger({ level: 'silent' }));
}

describe('the Zaptec client against the simulator', () => {
  it('reuses one token and sends the User-Agent on every request, the token request included', async () => {
    const { sim, client } = await setup();
    await Promise.all([client.api.installations(), client.api.chargers(), client.api.installations()]);
    expect(client.tokens.requests).toBe(1);
    expect(sim.requests.filter((r) => r.path === '/oauth/token')).toHaveLength(1);
    expect(sim.requests.every((r) => r.userAgent === 'zaptec-sync/9.9.9')).toBe(true);
  });

  it('asks for a new token once when the API answers 401', async () => {
    const { sim, client } = await setup();
    await client.api.installations();
    sim.expireTokens();
    expect(await client.api.installations()).toHaveLength(3);
    expect(sim.requests.filter((r) => r.path === '/oauth/token')).toHaveLength(2);
    expect(sim.requests.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('turns a refused password into a credentials error, without the password in it', async () => {
    const { sim, client } = await setup(undefined, {
      users: [{ username: 'demo@example.com', password: 'other' }],
    });
    const err = await client.api.installations().catch((e) => e);
    expect(err.name).toBe('CredentialsError');
    expect(String(err)).not.toContain('demo-password');
    expect(sim.requests).toHaveLength(1);
  });

  it('reads every page of the lists', async () => {
    const { sim, client } = await setup({ installations: 3, chargersPerInstallation: 90 });
    const chargers = await client.api.chargers();
    expect(chargers).toHaveLength(270);
    expect(new Set(chargers.map((c) => c.Id)).size).toBe(270);
    const pages = sim.requests
      .filter((r) => r.path === '/api/chargers')
      .map((r) => new URLSearchParams(r.query).get('PageIndex'));
    expect(pages).toEqual(['0', '1', '2']);
  });

  it('keeps the rest of a page when one item is bad, and says so once', async () => {
    const { sim, client, lines } = await setup({ installations: 1, chargersPerInstallation: 0 });
    const good = { Id: '2bbec6f9-c3ce-4edf-a72f-b1b2a663c6ba', Name: 'ok', Active: true };
    sim.faults.push({
      path: /^\/api\/installation$/,
      status: 200,
      body: JSON.stringify({
        Pages: 1,
        Data: [good, { Name: 'no id' }, { Id: 42 }, { Name: 'no id either' }],
      }),
      times: 1,
    });
    const list = await client.api.installations();
    expect(list.map((i) => i.Id)).toEqual([good.Id]);
    expect(lines.filter((l) => l.includes('skipping an item'))).toHaveLength(1);
  });

  it('returns nothing for a hierarchy answered 204', async () => {
    const { fleet, client } = await setup();
    const inst = [...fleet.installations.values()][0]!;
    expect(await client.api.hierarchy(inst.id)).toMatchObject({ Id: inst.id });
    inst.hierarchy204 = true;
    expect(await client.api.hierarchy(inst.id)).toBeUndefined();
  });

  it('finds one charger by serial with nameFilter, and by id', async () => {
    const { fleet, sim, client } = await setup();
    const c = [...fleet.chargers.values()][3]!;
    expect((await client.api.chargerBySerial(c.deviceId.toLowerCase()))?.Id).toBe(c.id);
    expect(sim.requests.at(-1)?.query).toContain(`NameFilter=${c.deviceId.toLowerCase()}`);
    expect(await client.api.chargerBySerial('ZAP999999')).toBeUndefined();
    expect((await client.api.charger(c.id))?.DeviceId).toBe(c.deviceId);
    expect(await client.api.charger('00000000-0000-4000-8000-000000000001')).toBeUndefined();
  });

  it('serves state from a 15 s cache, with one request for concurrent callers, and never reads it twice within 15 s', async () => {
    const { fleet, sim, client, db } = await setup();
    const c = [...fleet.chargers.values()][0]!;
    const [a, b, d] = await Promise.all([
      client.api.state(c.id),
      client.api.state(c.id),
      client.api.state(c.id),
    ]);
    expect(a).toBe(b);
    expect(a).toBe(d);
    expect(a.find((o) => o.StateId === 710)?.ValueAsString).toBe('1');
    expect(a.find((o) => o.StateId === -1)?.ValueAsString).toBeUndefined();
    await client.api.state(c.id);
    expect(sim.requests.filter((r) => r.path.endsWith('/state'))).toHaveLength(1);
    // A restarted daemon (new client, same database) must not read it again within 15 s either.
    const again = restarted(sim, db);
    const err = await again.api.state(c.id, { deadline: Date.now() + 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.retryAt - Date.now()).toBeGreaterThan(10_000);
    await again.close();
    expect(sim.requests.filter((r) => r.path.endsWith('/state'))).toHaveLength(1);
  });

  it('knows which chargers were read, for a restarted daemon too, in one look for many', async () => {
    const { fleet, sim, client, db } = await setup();
    const [c1, c2] = [...fleet.chargers.values()];
    await client.api.state(c1!.id);
    const again = restarted(sim, db);
    expect(again.api.chargersRead([c1!.id, c2!.id, 'unknown'])).toEqual(new Set([c1!.id]));
    expect(again.api.chargersRead([])).toEqual(new Set());
    await again.close();
  });

  it('reads the constants without a token', async () => {
    const { sim, client } = await setup();
    const constants = await client.api.constants();
    expect(constants.Observations?.ChargerOperationMode).toBe(710);
    expect(sim.requests.map((r) => r.path)).toEqual(['/api/constants']);
  });
});

describe('retries', () => {
  it('retries a read on 5xx with backoff, and never retries a write', async () => {
    const { sim, client } = await setup();
    await client.api.installations(); // token in hand
    sim.faults.push({ path: /^\/api\/installation$/, status: 503, times: 2 });
    expect(await client.api.installations()).toHaveLength(3);
    expect(sim.requests.filter((r) => r.path === '/api/installation').map((r) => r.status)).toEqual([
      200, 503, 503, 200,
    ]);
    sim.faults.push({ path: /^\/api\/chargers\/x\/write$/, status: 500, times: 5 });
    const res = await client.http.request({ method: 'POST', path: '/api/chargers/x/write', body: '{}' });
    expect(res.status).toBe(500);
    expect(sim.requests.filter((r) => r.path === '/api/chargers/x/write')).toHaveLength(1);
  });

  it('gives up on a read after its attempts, with the status in a typed error', async () => {
    const { sim, client } = await setup();
    await client.api.installations();
    sim.faults.push({ path: /^\/api\/installation$/, status: 502, times: 10 });
    const err = await client.api.installations().catch((e) => e);
    expect(err.name).toBe('HttpStatusError');
    expect(err.status).toBe(502);
    expect(sim.requests.filter((r) => r.status === 502)).toHaveLength(4);
  });

  it('opens the breaker after 5 failures in a row: the group pauses 30-60 s, kept in the database', async () => {
    const { sim, client, db } = await setup();
    await client.api.installations();
    sim.faults.push({ path: /^\/api\/installation$/, status: 503, times: 100 });
    expect((await client.api.installations().catch((e) => e)).status).toBe(503); // 4 attempts
    const before = Date.now();
    const err = await client.http
      .request({ method: 'GET', path: '/api/installation', deadline: Date.now() + 10_000 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.retryAt).toBeGreaterThanOrEqual(before + 30_000);
    expect(err.retryAt).toBeLessThanOrEqual(Date.now() + 60_000 + 1000);
    expect(sim.requests.filter((r) => r.status === 503)).toHaveLength(5);
    expect(db.prepare('SELECT source FROM api_blocks WHERE grp = ?').get('global')).toEqual({
      source: 'local:breaker',
    });
    // A restart (a new client on the same database) keeps the pause instead of probing at once.
    const again = restarted(sim, db);
    const err2 = await again.api.installations({ deadline: Date.now() + 5_000 }).catch((e) => e);
    await again.close();
    expect(err2).toBeInstanceOf(RateLimitedError);
    expect(sim.requests.filter((r) => r.status === 503)).toHaveLength(5);
  });
});

describe('header warnings', () => {
  it('says once, not for every response, that the server’s clock differs from ours', async () => {
    const { sim, client, lines } = await setup();
    await client.api.installations();
    const body = JSON.stringify({ Pages: 1, Data: [] });
    sim.faults.push({
      path: /^\/api\/installation$/,
      status: 200,
      body,
      times: 3,
      headers: () => ({ date: new Date(Date.now() - 60_000).toUTCString() }),
    });
    for (let i = 0; i < 3; i++) await client.api.installations();
    expect(lines.filter((l) => l.includes('clock differs from ours'))).toHaveLength(1);
  });
});

describe('timeouts', () => {
  // undici checks body silence on a timer of about a second's resolution, hence these lengths.
  const timeouts = { headersMs: 500, bodyMs: 1_000, attemptMs: 2_500 };

  it.each([
    ['headers that never come in time', { delayMs: 1_500 }],
    ['a body that stalls', { bodyDelayMs: 3_000 }],
    ['a body that trickles in past the attempt limit', { trickleMs: 150 }],
  ])('gives up on %s, counts a timeout and retries the read', async (_what, slow) => {
    const { sim, client, db } = await setup(undefined, {}, { timeouts });
    await client.api.installations();
    const body = JSON.stringify({ Pages: 1, Data: [] }).padEnd(40, ' ');
    sim.faults.push({ path: /^\/api\/installation$/, status: 200, body, times: 1, ...slow });
    expect(await client.api.installations()).toHaveLength(3);
    const outcomes = db
      .prepare(
        "SELECT outcome FROM api_requests WHERE grp = 'global' AND path = '/api/installation' ORDER BY id",
      )
      .all()
      .map((r) => (r as { outcome: string }).outcome);
    expect(outcomes).toEqual(['ok', 'timeout', 'ok']);
  });
});
