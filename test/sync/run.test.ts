/** issue 4 "done when", each against the simulator with the real `zaptec-sync run` process. */
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/simulator/random.js';
import { runCli } from '../helpers.js';
import { harness, waitFor } from './harness.js';

const count = (h: Awaited<ReturnType<typeof harness>>, sql: string) => h.one<{ n: number }>(sql).n;

/** The time of the last complete inventory pass, or false while there is none (or no database yet). */
function inventoryDone(h: Awaited<ReturnType<typeof harness>>): string | false {
  try {
    return (
      h.one<{ inventory_refreshed_at: string | null }>('SELECT inventory_refreshed_at FROM daemon')
        .inventory_refreshed_at ?? false
    );
  } catch {
    return false;
  }
}

function stateReadsPerCharger(paths: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of paths) {
    const id = /^\/api\/chargers\/([^/]+)\/state$/.exec(p)?.[1];
    if (id) m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

describe('zaptec-sync run against the simulator', () => {
  // The budget-bound cold start of 1,000 chargers is a policy: it runs on the simulated clock
  // (test/simulation/policies.test.ts). This is the built CLI doing the same for a smaller fleet.
  it('fresh database, 5 installations × 20 chargers: everything in SQLite with one pass and a state read each', {
    timeout: 60_000,
  }, async () => {
    const h = await harness({ installations: 5, chargersPerInstallation: 20 });
    const run = h.start();
    await waitFor(
      () => {
        try {
          return count(h, 'SELECT count(DISTINCT charger_id) AS n FROM charger_state') === 100;
        } catch {
          return false;
        }
      },
      { timeoutMs: 45_000, intervalMs: 250, what: '100 chargers with state' },
    );
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    expect(count(h, 'SELECT count(*) AS n FROM chargers WHERE active = 1')).toBe(100);
    expect(count(h, 'SELECT count(*) AS n FROM installations WHERE active = 1')).toBe(5);
    expect(count(h, "SELECT count(*) AS n FROM charger_state WHERE state_id = 710 AND source = 'poll'")).toBe(
      100,
    );
    const paths = h.sim.requests.map((r) => r.path);
    expect(paths.filter((p) => p === '/api/installation')).toHaveLength(1);
    expect(paths.filter((p) => p === '/api/chargers')).toHaveLength(1); // 100 fit on one page
    expect(paths.filter((p) => p.endsWith('/hierarchy'))).toHaveLength(5);
    expect(stateReadsPerCharger(paths).size).toBe(100);
    expect(h.sim.rejected).toEqual([]);
    const last = new Map<string, number>();
    for (const r of h.sim.requests.filter((r) => r.path.endsWith('/state') && r.status === 200)) {
      const before = last.get(r.path);
      if (before !== undefined) expect(r.at - before).toBeGreaterThanOrEqual(15_000);
      last.set(r.path, r.at);
    }
    expect(h.sim.requests.every((r) => r.userAgent?.startsWith('zaptec-sync/'))).toBe(true);
  });

  it('ten restarts in a row: no list call after the first start, no state read twice within 15 s', {
    timeout: 120_000,
  }, async () => {
    const h = await harness({ installations: 3, chargersPerInstallation: 4 });
    for (let i = 0; i < 10; i++) {
      const run = h.start();
      await waitFor(
        () => {
          try {
            return (
              count(h, 'SELECT count(DISTINCT charger_id) AS n FROM charger_state') === 12 &&
              h.one<{ pid: number }>('SELECT pid FROM daemon').pid === run.child.pid
            );
          } catch {
            return false;
          }
        },
        { what: `start ${i + 1}` },
      );
      expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    }
    const lists = h.sim.requests.filter((r) => r.path === '/api/installation' || r.path === '/api/chargers');
    expect(lists).toHaveLength(2);
    const byCharger = new Map<string, number[]>();
    for (const r of h.sim.requests) {
      const id = /^\/api\/chargers\/([^/]+)\/state$/.exec(r.path)?.[1];
      if (id) byCharger.set(id, [...(byCharger.get(id) ?? []), r.at]);
    }
    for (const times of byCharger.values()) {
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(15_000);
    }
    expect(h.sim.rejected).toEqual([]);
  });

  it('answers refresh requests written by another process: a new charger is found, a made-up serial is not', async () => {
    const h = await harness({ installations: 2, chargersPerInstallation: 3 });
    const run = h.start();
    await waitFor(() => inventoryDone(h));
    const inst = [...h.fleet.installations.keys()][0]!;
    const added = h.fleet.addCharger(inst, Date.now());
    // A consumer asks through the control database beside the main one (CONTRACT §10).
    const consumer = new Database(join(dirname(h.dbPath), 'control.db'));
    consumer.pragma('busy_timeout = 5000');
    const t0 = Date.now();
    const newId = Number(
      consumer.prepare('INSERT INTO refresh_requests(charger) VALUES (?)').run(added.deviceId)
        .lastInsertRowid,
    );
    const bogusId = Number(
      consumer.prepare("INSERT INTO refresh_requests(charger) VALUES ('ZAP999999')").run().lastInsertRowid,
    );
    const answered = (id: number) =>
      consumer.prepare('SELECT outcome, handled_at, detail FROM refresh_requests WHERE id = ?').get(id) as {
        outcome: string | null;
        handled_at: string | null;
      };
    await waitFor(() => answered(newId).handled_at && answered(bogusId).handled_at, {
      timeoutMs: 5_000,
      what: 'answers',
    });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(answered(newId).outcome).toBe('found');
    expect(answered(bogusId).outcome).toBe('not_found');
    consumer.close();
    const reader = new Database(h.dbPath, { readonly: true });
    expect(reader.prepare('SELECT id, active FROM chargers WHERE device_id = ?').get(added.deviceId)).toEqual(
      {
        id: added.id,
        active: 1,
      },
    );
    await waitFor(() => reader.prepare('SELECT 1 FROM charger_state WHERE charger_id = ?').get(added.id), {
      what: 'state of the new charger',
    });
    reader.close();
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });

  it('SIGKILL at three random points of the inventory pass, then a restart: complete, consistent, nothing duplicated, no 429', {
    timeout: 90_000,
  }, async () => {
    const h = await harness({ installations: 40, chargersPerInstallation: 2 });
    const hierarchies = () => h.sim.requests.filter((r) => r.path.endsWith('/hierarchy')).length;
    const random = seededRandom(23);
    for (let kill = 0; kill < 3; kill++) {
      const run = h.start();
      const target = hierarchies() + 1 + Math.floor(random() * 38);
      await waitFor(() => hierarchies() >= target, { timeoutMs: 30_000, what: `hierarchy ${target}` });
      run.child.kill('SIGKILL');
      await run.exited;
      expect(count(h, 'SELECT count(*) AS n FROM chargers')).toBe(0); // one transaction: nothing half-written
    }
    const second = h.start();
    await waitFor(() => inventoryDone(h));
    expect(await h.stop(second)).toEqual({ code: 0, signal: null });
    expect(count(h, 'SELECT count(*) AS n FROM installations')).toBe(40);
    expect(count(h, 'SELECT count(*) AS n FROM chargers WHERE active = 1')).toBe(80);
    expect(count(h, 'SELECT count(*) AS n FROM circuits')).toBe(40);
    expect(h.sim.rejected).toEqual([]);
    // Every request the simulator saw was recorded in the budget before it was sent (crash included).
    expect(count(h, "SELECT count(*) AS n FROM api_requests WHERE grp = 'global'")).toBeGreaterThanOrEqual(
      h.sim.requests.length,
    );
  });
});

describe('SIGHUP', () => {
  it('asks for an inventory refresh, deferred inside the 60-minute spacing, and the daemon keeps running', async () => {
    const h = await harness({ installations: 1, chargersPerInstallation: 2 });
    const run = h.start();
    await waitFor(() => run.output().includes('inventory pass completed'));
    run.child.kill('SIGHUP');
    await waitFor(() => run.output().includes('SIGHUP: inventory refresh deferred'), {
      what: 'the deferral',
    });
    expect(h.sim.requests.filter((r) => r.path === '/api/installation')).toHaveLength(1);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });

  it('answers a whole-inventory request within 5 s while its pass is slow: deferred, then refreshed when the pass is done', {
    timeout: 60_000,
  }, async () => {
    const h = await harness({ installations: 1, chargersPerInstallation: 2 });
    let run = h.start();
    await waitFor(() => run.output().includes('inventory pass completed'));
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    // Two hours later, as far as the spacing knows: the next start runs a pass, and the lists answer slowly.
    const db = new Database(h.dbPath);
    db.prepare('UPDATE daemon SET inventory_refreshed_at = ?').run(
      new Date(Date.now() - 2 * 3_600_000).toISOString(),
    );
    db.close();
    h.sim.faults.push({ path: /^\/api\/installation$/, status: 503, times: 1, delayMs: 8_000 });
    run = h.start();
    await waitFor(() => h.sim.requests.filter((r) => r.path === '/api/installation').length === 2, {
      what: 'the slow pass under way',
    });
    const asked = Date.now();
    const answer = await runCli(['refresh', '--wait', '30'], { env: h.env, cwd: h.dir });
    expect(answer.stdout).toMatch(
      /^deferred: an inventory pass is under way; answered again once it completes\n$/,
    );
    expect(Date.now() - asked).toBeLessThan(5_000 + 1_000); // the CLI's own start on top
    const reader = new Database(join(h.dir, 'control.db'), { readonly: true });
    await waitFor(
      () =>
        (
          reader.prepare('SELECT outcome FROM refresh_requests ORDER BY id DESC LIMIT 1').get() as {
            outcome: string;
          }
        ).outcome === 'refreshed',
      { timeoutMs: 40_000, what: 'refreshed once the pass completed' },
    );
    reader.close();
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });
});
