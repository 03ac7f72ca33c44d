/** The real `zaptec-sync run` process against the simulator, and reading what it wrote. */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach } from 'vitest';
import { Fleet, type FleetOptions } from '../../src/simulator/fleet.js';
import { RestSimulator, type RestSimulatorOptions } from '../../src/simulator/rest.js';
import { cleanEnv, type Running, startCli, tempDir, waitFor } from '../helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

export interface Harness {
  sim: RestSimulator;
  fleet: Fleet;
  dir: string;
  dbPath: string;
  env: NodeJS.ProcessEnv;
  start(extra?: Record<string, string>): Running;
  stop(run: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  query<T>(sql: string, ...params: unknown[]): T[];
  one<T>(sql: string, ...params: unknown[]): T;
}

export async function harness(
  fleetOptions: FleetOptions,
  env: Record<string, string> = {},
  simOptions: Partial<RestSimulatorOptions> = {},
): Promise<Harness> {
  const fleet = new Fleet({ seed: 11, ...fleetOptions });
  const sim = new RestSimulator({ fleet, ...simOptions });
  await sim.start();
  cleanups.push(() => sim.stop());
  const dir = tempDir();
  const dbPath = join(dir, 'zaptec.db');
  const baseEnv = cleanEnv({
    ZAPTEC_API_URL: sim.url,
    ZAPTEC_USERNAME: sim.users[0]!.username,
    ZAPTEC_PASSWORD: sim.users[0]!.password,
    ZAPTEC_DB: dbPath,
    ZAPTEC_EVENTS: 'off',
    LOG_LEVEL: 'info',
    ...env,
  });
  const read = () => new Database(dbPath, { readonly: true, fileMustExist: true });
  return {
    sim,
    fleet,
    dir,
    dbPath,
    env: baseEnv,
    start(extra = {}) {
      const run = startCli(['run'], { env: { ...baseEnv, ...extra }, cwd: dir });
      cleanups.push(() => {
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      });
      return run;
    },
    async stop(run) {
      run.child.kill('SIGTERM');
      return run.exited;
    },
    query<T>(sql: string, ...params: unknown[]) {
      const db = read();
      try {
        return db.prepare(sql).all(...params) as T[];
      } finally {
        db.close();
      }
    },
    one<T>(sql: string, ...params: unknown[]) {
      const db = read();
      try {
        return db.prepare(sql).get(...params) as T;
      } finally {
        db.close();
      }
    },
  };
}

export { waitFor };
