/** The real `zaptec-sync run` process against a whole simulation: REST and broker. */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach } from 'vitest';
import type { FleetOptions } from '../../src/simulator/fleet.js';
import { Simulation } from '../../src/simulator/simulation.js';
import { cleanEnv, type Running, startCli, tempDir, waitFor } from '../helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

export async function liveHarness(
  fleet: FleetOptions,
  env: Record<string, string> = {},
  lockDurationMs?: number,
) {
  const sim = new Simulation({ fleet: { seed: 5, ...fleet }, ...(lockDurationMs ? { lockDurationMs } : {}) });
  await sim.start();
  cleanups.push(() => sim.stop());
  const dir = tempDir();
  const dbPath = join(dir, 'zaptec.db');
  const baseEnv = cleanEnv({
    ...sim.env(),
    ZAPTEC_DB: dbPath,
    ZAPTEC_EVENTS: 'on',
    LOG_LEVEL: 'info',
    ...env,
  });
  let reader: Database.Database | undefined;
  const db = () => {
    reader ??= new Database(dbPath, { readonly: true, fileMustExist: true });
    return reader;
  };
  cleanups.push(() => {
    reader?.close();
  });
  const h = {
    sim,
    dir,
    dbPath,
    env: baseEnv,
    start(extra: Record<string, string> = {}): Running {
      const run = startCli(['run'], { env: { ...baseEnv, ...extra }, cwd: dir });
      cleanups.push(() => {
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      });
      return run;
    },
    query<T>(sql: string, ...params: unknown[]): T[] {
      return db()
        .prepare(sql)
        .all(...params) as T[];
    },
    one<T>(sql: string, ...params: unknown[]): T {
      return db()
        .prepare(sql)
        .get(...params) as T;
    },
    /** Every followed installation's events are `connected` (all of the fleet's unless `n` says how many). */
    async connected(timeoutMs = 30_000, n = sim.fleet.installations.size): Promise<void> {
      await waitFor(
        () => {
          try {
            return (
              h.one<{ n: number }>("SELECT count(*) AS n FROM sync_status WHERE events = 'connected'").n === n
            );
          } catch {
            return false;
          }
        },
        { timeoutMs, what: 'live events connected' },
      );
    },
  };
  return h;
}
