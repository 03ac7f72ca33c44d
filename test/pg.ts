/**
 * The test run's PostgreSQL (test/postgres-setup.ts): its superuser URL, or why there is none. Each test takes
 * a schema of its own (`freshSchema`), so files and tests never see each other's rows.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, inject } from 'vitest';

const provided = inject('pg');
/** The superuser's URL, with its password; undefined where the machine has no PostgreSQL server. */
export const pgUrl: string | undefined = 'url' in provided ? provided.url : undefined;
/** Why the PostgreSQL tests are skipped here (said once per file). */
export const pgAbsent: string | undefined = 'absent' in provided ? provided.absent : undefined;
if (pgAbsent) console.warn(`PostgreSQL tests skipped: ${pgAbsent}`);

/** A new schema name (the schema itself is made by `migrate`). */
export function freshSchema(prefix = 't'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** ZAPTEC_DB and ZAPTEC_PG_SCHEMA for a CLI process. */
export function pgEnv(schema: string, url = pgUrl!): Record<string, string> {
  return { ZAPTEC_DB: url, ZAPTEC_PG_SCHEMA: schema };
}

let admin: pg.Pool | undefined;
/** The superuser's pool (closed after the file). */
export function pgAdmin(): pg.Pool {
  admin ??= new pg.Pool({ connectionString: pgUrl, max: 2 });
  return admin;
}
afterAll(async () => {
  await admin?.end();
  admin = undefined;
});

/** The URL for another user of the same server. */
export function urlAs(user: string, password: string): string {
  const u = new URL(pgUrl!);
  u.username = user;
  u.password = password;
  return u.toString();
}

/**
 * A PostgreSQL server of the test's own (scripts/postgres), for a test that restarts it: the run's server
 * is shared by the test files running beside it. `stop()` removes it.
 */
export async function ownServer(): Promise<{ url: string; restart(): Promise<void>; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-pg-own-'));
  chmodSync(dir, 0o755); // under root the cluster's user (nobody) must reach its files
  const script = join(import.meta.dirname, '..', 'scripts', 'postgres');
  const run = promisify(execFile);
  const { stdout } = await run(script, ['start', dir]);
  return {
    url: stdout.trim(),
    restart: async () => {
      await run(script, ['restart', dir]);
    },
    stop: async () => {
      await run(script, ['stop', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
