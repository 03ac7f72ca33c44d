/**
 * Every row of a SQLite database (and its control database) copied into a migrated PostgreSQL schema, each
 * value in the PostgreSQL column's type: the same data in both stores, for tests that compare what the
 * commands make of each.
 */
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { waitFor } from './helpers.js';
import { pgAdmin } from './pg.js';
import { harness } from './sync/harness.js';

/**
 * What a real daemon wrote: `run` against the simulator (2 installations of 3 chargers, 2 days of charge
 * history) until every charger's state, both installations' history passes and some sessions are stored, then
 * stopped; its database and control database copied into a directory of their own (the caller removes it),
 * with the daemon's environment and one charger's serial.
 */
export async function daemonFiles(
  prefix: string,
): Promise<{ dir: string; env: NodeJS.ProcessEnv; serial: string }> {
  const h = await harness({ installations: 2, chargersPerInstallation: 3, pastDays: 2 });
  const run = h.start();
  await waitFor(
    () =>
      h.one<{ n: number }>('SELECT count(DISTINCT charger_id) AS n FROM charger_state').n === 6 &&
      h.one<{ n: number }>('SELECT count(*) AS n FROM charge_history_passes').n === 2 &&
      h.one<{ n: number }>('SELECT count(*) AS n FROM charging_sessions').n > 0,
    { timeoutMs: 30_000, what: 'state, charge history and sessions of every charger' },
  );
  expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  // The harness's directory goes after the test or hook: the copies stay until the caller removes them.
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const f of ['zaptec.db', 'control.db']) copyFileSync(join(h.dir, f), join(dir, f));
  const serial = h.one<{ device_id: string }>('SELECT device_id FROM chargers ORDER BY id LIMIT 1').device_id;
  return { dir, env: h.env, serial };
}

/** Parents before children (charging_session_energy references charging_sessions). */
const FIRST = ['charging_sessions'];

export async function copyToPostgres(sqlitePaths: string[], schema: string): Promise<void> {
  const admin = pgAdmin();
  const columns = await admin.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
     JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' AND c.table_name <> 'schema_version'`,
    [schema],
  );
  const tables = [...new Set(columns.rows.map((c) => c.table_name))].sort(
    (a, b) => Number(FIRST.includes(b)) - Number(FIRST.includes(a)),
  );
  for (const path of sqlitePaths.filter((p) => existsSync(p))) {
    const db = new Database(path, { readonly: true });
    try {
      for (const table of tables) {
        if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table)) continue;
        const rows = db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[];
        await admin.query(`TRUNCATE ${schema}.${table} CASCADE`);
        for (const row of rows) {
          const cols = columns.rows.filter((c) => c.table_name === table && c.column_name in row);
          const values = cols.map((c) => {
            const v = row[c.column_name];
            return c.data_type === 'boolean' && v !== null ? Boolean(v) : v;
          });
          await admin.query(
            `INSERT INTO ${schema}.${table} (${cols.map((c) => `"${c.column_name}"`).join(', ')})
             OVERRIDING SYSTEM VALUE VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
            values,
          );
        }
      }
    } finally {
      db.close();
    }
  }
  for (const table of ['refresh_requests', 'commands'])
    await admin.query(
      `SELECT setval(pg_get_serial_sequence($1, 'id'), coalesce((SELECT max(id) FROM ${schema}.${table}), 0) + 1, false)`,
      [`${schema}.${table}`],
    );
}
