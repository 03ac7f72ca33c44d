/**
 * Every row of a SQLite database (and its control database) copied into a migrated PostgreSQL schema, each
 * value in the PostgreSQL column's type: the same data in both stores, for tests that compare what the
 * commands make of each.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { pgAdmin } from './pg.js';

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
