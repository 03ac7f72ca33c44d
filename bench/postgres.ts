/**
 * A throwaway PostgreSQL on this host for the benchmarks (scripts/postgres), beside SQLite in the same run;
 * undefined, with the reason said once, where the machine has no PostgreSQL server.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PostgresLocation } from '../src/config.js';
import { migratePostgres } from '../src/store/postgres/migrate.js';
import { openPool, type PgPool } from '../src/store/postgres/pool.js';

const script = join(import.meta.dirname, '..', '..', 'scripts', 'postgres');

export interface BenchPostgres {
  location: PostgresLocation;
  pool: PgPool;
  /** Stops the server and starts it again on the same port: every session ends. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function benchPostgres(schema = 'bench'): Promise<BenchPostgres | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-bench-pg-'));
  let url: URL;
  try {
    url = new URL(
      execFileSync(script, ['start', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(),
    );
  } catch (err) {
    console.log(`PostgreSQL skipped: ${String((err as { stderr?: string }).stderr ?? err).trim()}`);
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const password = decodeURIComponent(url.password);
  url.password = '';
  const location = { url: url.toString(), password, schema };
  const pool = openPool(location, { max: 2 });
  await migratePostgres(pool, schema);
  return {
    location,
    pool,
    restart: async () => {
      await promisify(execFile)(script, ['restart', dir]);
    },
    stop: async () => {
      await pool.end();
      execFileSync(script, ['stop', dir], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
