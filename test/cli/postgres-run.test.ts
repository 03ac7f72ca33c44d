/**
 * `run` against PostgreSQL (CONTRACT §9, issues 27 and 28): the real process, the real SDK against the
 * simulator's broker, a real PostgreSQL. The live path stores every observation and notifies; consumers'
 * requests are answered through the schema; one instance is active and the others standby, and the lease
 * moves at a clean stop, a SIGKILL, a cut connection and a frozen process, with no 429 and nothing lost.
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { SimObservation } from '../../src/simulator/fleet.js';
import { PgLease } from '../../src/store/postgres/lease.js';
import { latestPgSchemaVersion } from '../../src/store/postgres/migrate.js';
import { freePort, runCli, waitFor } from '../helpers.js';
import { canNotify, listeningSocket } from '../notify-socket.js';
import { freshSchema, ownServer, pgAdmin, pgEnv, pgUrl } from '../pg.js';
import { liveHarness } from '../sync/live-harness.js';

type H = Awaited<ReturnType<typeof liveHarness>>;

const clients: pg.Client[] = [];
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
});

/** The server the rows are read from: the test run's, or a test's own (a restart of the server). */
let server: pg.Pool | undefined;
async function rows<T extends pg.QueryResultRow>(sql: string, ...params: unknown[]): Promise<T[]> {
  return (await (server ?? pgAdmin()).query<T>(sql, params)).rows;
}

/** Publishes `n` changes of 513 spread over the fleet; what must be current afterwards. */
function publish(h: H, n: number, from: number): Map<string, SimObservation> {
  const chargers = [...h.sim.fleet.chargers.values()];
  const newest = new Map<string, SimObservation>();
  for (let i = 0; i < n; i++) {
    const c = chargers[i % chargers.length]!;
    const o = h.sim.fleet.set(c.id, 513, String(from + i), Date.now() + i);
    h.sim.publish(o);
    newest.set(c.id, o);
  }
  return newest;
}

async function stored(schema: string, newest: Map<string, SimObservation>): Promise<boolean> {
  const r = await rows<{ charger_id: string; value: string }>(
    `SELECT charger_id, value FROM ${schema}.charger_state WHERE state_id = 513`,
  );
  const now = new Map(r.map((x) => [x.charger_id, x.value]));
  return [...newest].every(([id, o]) => now.get(id) === o.value);
}

async function activeInstances(schema: string): Promise<{ pid: number; role: string }[]> {
  return rows(`SELECT pid, role FROM ${schema}.daemons WHERE role = 'active'`);
}

describe.runIf(pgUrl)('run against PostgreSQL', () => {
  it('stores every live observation, notifies LISTENers, answers refresh requests and stops cleanly', {
    timeout: 90_000,
  }, async () => {
    const schema = freshSchema();
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 3 }, pgEnv(schema));
    const listener = new pg.Client({ connectionString: pgUrl });
    clients.push(listener);
    await listener.connect();
    await listener.query(`LISTEN ${schema}_state`);
    const notified = new Set<string>();
    listener.on('notification', (n) => {
      for (const id of JSON.parse(n.payload ?? '[]') as string[]) notified.add(id);
    });
    // doctor before the first start: the server answers and run will make the schema.
    const before = await runCli(['doctor'], { env: h.env, cwd: h.dir });
    expect(before.stdout).toContain('will create the schema');
    expect(before.code).toBe(0);
    const run = h.start();
    await waitFor(
      async () =>
        (
          await rows<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${schema}.sync_status WHERE events = 'connected'`,
          ).catch(() => [{ n: 0 }])
        )[0]!.n === 2,
      { timeoutMs: 30_000, what: 'live events connected, as PostgreSQL says' },
    ).catch((err) => {
      console.log(run.output());
      throw err;
    });
    const newest = publish(h, 300, 1000);
    await waitFor(() => stored(schema, newest), {
      timeoutMs: 15_000,
      what: 'every observation in PostgreSQL',
    });
    for (const id of newest.keys()) expect(notified.has(id), id).toBe(true);
    expect(await activeInstances(schema)).toEqual([{ pid: run.child.pid, role: 'active' }]);
    const during = await runCli(['doctor'], { env: h.env, cwd: h.dir });
    expect(during.stdout).toMatch(
      new RegExp(`ok +database: .* is writable; active now: pid ${run.child.pid} `),
    );
    expect(during.code).toBe(0);

    // A consumer asks through the schema; the answer comes back there within 5 s (CONTRACT §3).
    const serial = [...h.sim.fleet.chargers.values()][0]!.deviceId;
    const asked = await runCli(['refresh', serial, '--wait', '5'], { env: h.env, cwd: h.dir });
    expect(asked.stderr).toBe('');
    expect(asked.code).toBe(0);
    const state = await runCli(['state', serial], { env: h.env, cwd: h.dir });
    expect(state.code).toBe(0);
    expect(state.stdout).toContain('513');

    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    const [daemon] = await rows<{ stopped_at: string | null; schema_version: number }>(
      `SELECT stopped_at, schema_version FROM ${schema}.daemon`,
    );
    expect(daemon?.stopped_at).not.toBeNull();
    expect(daemon?.schema_version).toBe(latestPgSchemaVersion()); // the schema's, not the working copy's
    expect(await rows(`SELECT role FROM ${schema}.daemons`)).toEqual([{ role: 'stopped' }]);
    expect(h.sim.rest.rejected.length).toBe(0);
  });

  it('two accounts in one database: two daemons with their own schemas are both active and see only their own', {
    timeout: 90_000,
  }, async () => {
    const [s1, s2] = [freshSchema(), freshSchema()];
    const one = await liveHarness({ installations: 1, chargersPerInstallation: 2 }, pgEnv(s1));
    const two = await liveHarness({ installations: 1, chargersPerInstallation: 3, seed: 9 }, pgEnv(s2));
    const runs = [one.start(), two.start()];
    for (const [schema, run] of [
      [s1, runs[0]!],
      [s2, runs[1]!],
    ] as const)
      await waitFor(async () => (await activeInstances(schema)).some((r) => r.pid === run.child.pid), {
        timeoutMs: 20_000,
        what: `the daemon of ${schema} active`,
      });
    const newest = [publish(one, 20, 1), publish(two, 30, 1)];
    await waitFor(async () => (await stored(s1, newest[0]!)) && (await stored(s2, newest[1]!)), {
      timeoutMs: 20_000,
      what: 'both accounts’ observations',
    });
    for (const [schema, h] of [
      [s1, one],
      [s2, two],
    ] as const) {
      const ids = await rows<{ charger_id: string }>(
        `SELECT DISTINCT charger_id FROM ${schema}.charger_state`,
      );
      expect(new Set(ids.map((r) => r.charger_id))).toEqual(new Set(h.sim.fleet.chargers.keys()));
      const status = await runCli(['status', '--json'], { env: h.env, cwd: h.dir });
      const report = JSON.parse(status.stdout) as { instances: { role: string; alive: boolean }[] };
      expect(report.instances.filter((i) => i.alive).map((i) => i.role)).toEqual(['active']);
    }
    for (const run of runs) run.child.kill('SIGTERM');
    for (const run of runs) expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it.runIf(canNotify)(
    'a standby tells systemd it is ready, says so in STATUS, and keeps the watchdog fed',
    {
      timeout: 60_000,
    },
    async () => {
      const schema = freshSchema();
      const h = await liveHarness({ installations: 1, chargersPerInstallation: 1 }, pgEnv(schema));
      expect((await runCli(['migrate'], { env: h.env, cwd: h.dir })).code).toBe(0);
      const holder = new PgLease({ location: { url: pgUrl!, schema, password: undefined } });
      expect(await holder.tryAcquire()).toBe(true);
      const listener = await listeningSocket();
      try {
        const run = h.start({ NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '20000000' });
        await waitFor(() => listener.lines().some((l) => l.includes('READY=1')), { what: 'READY=1' });
        expect(listener.lines().find((l) => l.includes('READY=1'))).toContain('STATUS=standby');
        await waitFor(() => listener.lines().some((l) => l.includes('WATCHDOG=1')), {
          timeoutMs: 15_000,
          what: 'WATCHDOG=1 from the standby',
        });
        expect(h.sim.rest.requests).toEqual([]);
        run.child.kill('SIGTERM');
        expect(await run.exited).toEqual({ code: 0, signal: null });
      } finally {
        listener.child.kill();
        await holder.release();
      }
    },
  );

  it('a standby makes no API call and no connection while another holds the lease, and takes over within a second of its release', {
    timeout: 90_000,
  }, async () => {
    const schema = freshSchema();
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 }, pgEnv(schema));
    expect((await runCli(['migrate'], { env: h.env, cwd: h.dir })).code).toBe(0);
    const holder = new PgLease({ location: { url: pgUrl!, schema, password: undefined } });
    expect(await holder.tryAcquire()).toBe(true);
    const port = await freePort();
    const run = h.start({ ZAPTEC_METRICS: `127.0.0.1:${port}` });
    await waitFor(
      async () => (await rows(`SELECT 1 FROM ${schema}.daemons WHERE role = 'standby'`)).length === 1,
      {
        what: 'the standby’s row',
      },
    );
    await new Promise((r) => setTimeout(r, 3_000));
    expect(h.sim.rest.requests).toEqual([]);
    const inst = [...h.sim.fleet.installations.keys()][0]!;
    const c = h.sim.channel(inst);
    expect(h.sim.broker.attached(c.topic, c.subscription)).toBe(false);
    // A healthy standby says so, and serves its role.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toContain('standby: healthy');
    expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain('zaptec_active 0');
    const released = Date.now();
    await holder.release();
    await waitFor(() => h.sim.rest.requests.length > 0, { timeoutMs: 10_000, what: 'the first API call' });
    const firstCall = h.sim.rest.requests[0]!.at - released;
    expect(firstCall).toBeLessThan(3_000);
    expect(await activeInstances(schema)).toEqual([{ pid: run.child.pid, role: 'active' }]);
    // The active daemon serves the port now.
    await waitFor(
      async () =>
        (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).includes('zaptec_active 1'),
      {
        what: 'the active daemon’s metrics',
      },
    );
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});

/**
 * Two instances on one schema: `a` asks the simulator as 127.0.0.1, `b` as localhost, so that every API call
 * says which instance made it (the Host header).
 */
async function pair(schema: string, url = pgUrl!) {
  const h = await liveHarness({ installations: 2, chargersPerInstallation: 3 }, pgEnv(schema, url));
  const a = h.start();
  await waitFor(async () => (await activeInstances(schema)).some((r) => r.pid === a.child.pid), {
    timeoutMs: 20_000,
    what: 'a active',
  });
  await waitFor(
    async () =>
      (
        await rows<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${schema}.sync_status WHERE events = 'connected'`,
        )
      )[0]!.n === 2,
    { timeoutMs: 30_000, what: 'a’s live events connected' },
  );
  const b = h.start({ ZAPTEC_API_URL: h.sim.rest.url.replace('127.0.0.1', 'localhost') });
  await waitFor(
    async () => (await rows(`SELECT 1 FROM ${schema}.daemons WHERE role = 'standby'`)).length === 1,
    {
      what: 'b standby',
    },
  );
  const host = (run: typeof a) =>
    run === a ? new URL(h.sim.rest.url).host : new URL(h.sim.rest.url.replace('127.0.0.1', 'localhost')).host;
  /** API calls of one instance at or after `since` (epoch ms). */
  const calls = (run: typeof a, since = 0) =>
    h.sim.rest.requests.filter((r) => r.host === host(run) && r.at >= since);
  /** Publishes a steady stream (20 changes every 100 ms) until stopped; what must be current at the end. */
  const stream = () => {
    const newest = new Map<string, SimObservation>();
    let i = 0;
    const timer = setInterval(() => {
      for (const [id, o] of publish(h, 20, 10_000 + i)) newest.set(id, o);
      i += 20;
    }, 100);
    return { newest, stop: () => clearInterval(timer) };
  };
  return { h, a, b, calls, stream };
}

/** The backend holding the schema's lease. */
async function leaseBackend(schema: string): Promise<number | undefined> {
  const r = await rows<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid = hashtext($1)::oid`,
    schema,
  );
  return r[0]?.pid;
}

describe.runIf(pgUrl)('failover between two instances of one schema', () => {
  it('SIGKILL of the active: the standby is active and calling the API within 30 s, every observation stored, no 429', {
    timeout: 120_000,
  }, async () => {
    const schema = freshSchema();
    const { h, a, b, calls, stream } = await pair(schema);
    const s = stream();
    await new Promise((r) => setTimeout(r, 1_000));
    const killed = Date.now();
    a.child.kill('SIGKILL');
    await waitFor(() => calls(b).length > 0, { timeoutMs: 30_000, what: 'b’s first API call' });
    const firstCall = calls(b)[0]!.at - killed;
    await new Promise((r) => setTimeout(r, 2_000));
    s.stop();
    await waitFor(() => stored(schema, s.newest), {
      timeoutMs: 30_000,
      what: 'every observation in PostgreSQL',
    });
    expect(firstCall).toBeLessThan(30_000);
    expect((await activeInstances(schema)).map((r) => r.pid)).toEqual([b.child.pid]);
    // The killed one's working copy is gone too: the next start removes what a dead process left.
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`zaptec-sync-work-${a.child.pid}-`))).toEqual([]);
    expect(h.sim.rest.rejected).toEqual([]);
    b.child.kill('SIGTERM');
    expect(await b.exited).toEqual({ code: 0, signal: null });
  });

  it('the active’s lease connection cut: it stops calling the API within 10 s, and the standby takes over', {
    timeout: 120_000,
  }, async () => {
    const schema = freshSchema();
    const { h, a, b, calls } = await pair(schema);
    const backend = await leaseBackend(schema);
    expect(backend).toBeDefined();
    const cut = Date.now();
    await pgAdmin().query('SELECT pg_terminate_backend($1)', [backend]);
    await waitFor(async () => (await activeInstances(schema)).some((r) => r.pid === b.child.pid), {
      timeoutMs: 30_000,
      what: 'b active',
    });
    await waitFor(() => calls(b).length > 0, { timeoutMs: 30_000, what: 'b’s first API call' });
    await new Promise((r) => setTimeout(r, 10_000));
    expect(calls(a, cut + 10_000)).toEqual([]);
    expect(a.output()).toContain('lost the lease');
    expect(h.sim.rest.rejected).toEqual([]);
    for (const run of [a, b]) run.child.kill('SIGTERM');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(await b.exited).toEqual({ code: 0, signal: null });
  });

  it('the active frozen for 60 s: the standby takes over; resumed, the old one calls nothing and writes nothing', {
    timeout: 240_000,
  }, async () => {
    const schema = freshSchema();
    const { h, a, b, calls, stream } = await pair(schema);
    a.child.kill('SIGSTOP');
    const frozen = Date.now();
    await waitFor(async () => (await activeInstances(schema)).some((r) => r.pid === b.child.pid), {
      timeoutMs: 30_000,
      what: 'b active',
    });
    const tookOver = Date.now() - frozen;
    const s = stream();
    await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - frozen))));
    const resumed = Date.now();
    a.child.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 8_000));
    s.stop();
    expect(tookOver).toBeLessThan(30_000);
    expect(calls(a, resumed)).toEqual([]);
    const [daemon] = await rows<{ pid: number }>(`SELECT pid FROM ${schema}.daemon`);
    expect(daemon?.pid).toBe(b.child.pid);
    expect((await activeInstances(schema)).map((r) => r.pid)).toEqual([b.child.pid]);
    await waitFor(() => stored(schema, s.newest), {
      timeoutMs: 30_000,
      what: 'every observation in PostgreSQL',
    });
    expect(a.output()).toContain('lost the lease');
    expect(h.sim.rest.rejected).toEqual([]);
    for (const run of [a, b]) run.child.kill('SIGTERM');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(await b.exited).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM of the active hands over at once', { timeout: 90_000 }, async () => {
    const schema = freshSchema();
    const { h, a, b, calls } = await pair(schema);
    a.child.kill('SIGTERM');
    const stopping = Date.now();
    expect(await a.exited).toEqual({ code: 0, signal: null });
    await waitFor(() => calls(b).length > 0, { timeoutMs: 10_000, what: 'b’s first API call' });
    expect(calls(b)[0]!.at - stopping).toBeLessThan(5_000);
    expect(h.sim.rest.rejected).toEqual([]);
    b.child.kill('SIGTERM');
    expect(await b.exited).toEqual({ code: 0, signal: null });
  });

  it('PostgreSQL restarts under a running pair: nothing lost, one active afterwards, no 429', {
    timeout: 120_000,
  }, async () => {
    const own = await ownServer();
    const url = own.url;
    server = new pg.Pool({ connectionString: url, max: 2 });
    server.on('error', () => {});
    try {
      const schema = freshSchema();
      const { h, a, b, stream } = await pair(schema, url);
      const s = stream();
      await new Promise((r) => setTimeout(r, 1_000));
      await own.restart();
      await new Promise((r) => setTimeout(r, 5_000));
      s.stop();
      await waitFor(async () => stored(schema, s.newest).catch(() => false), {
        timeoutMs: 60_000,
        what: 'every observation in PostgreSQL after its restart',
      });
      const alive = await rows<{ pid: number }>(
        `SELECT pid FROM ${schema}.daemons WHERE role = 'active' AND heartbeat_at > now() - interval '30 seconds'`,
      );
      expect(alive).toHaveLength(1);
      expect([a.child.pid, b.child.pid]).toContain(alive[0]!.pid);
      expect(a.output()).toContain('lost the lease'); // the restart did end the active's term
      expect(h.sim.rest.rejected).toEqual([]);
      for (const run of [a, b]) run.child.kill('SIGTERM');
      expect(await a.exited).toEqual({ code: 0, signal: null });
      expect(await b.exited).toEqual({ code: 0, signal: null });
    } finally {
      await server.end().catch(() => {});
      server = undefined;
      await own.stop();
    }
  });
});
