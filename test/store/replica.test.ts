/**
 * The working copy and its Replicator (CONTRACT §9; store/postgres/working-copy.ts, replicator.ts) against a
 * real PostgreSQL: everything a real daemon wrote, written into a working copy, lands in the schema row for
 * row and value for value in PostgreSQL's types; a new copy loaded from the schema holds the same rows again;
 * updates and deletes are carried; each carried commit notifies `<schema>_state` and `<schema>_sessions` with
 * the ids it changed; and a copy whose daemon lost the lease lands nothing.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { LeaseLostError, PgLease } from '../../src/store/postgres/lease.js';
import { migratePostgres } from '../../src/store/postgres/migrate.js';
import { openPool, type PgPool } from '../../src/store/postgres/pool.js';
import { Replicator } from '../../src/store/postgres/replicator.js';
import { type CarriedTable, WorkingCopy } from '../../src/store/postgres/working-copy.js';
import { waitFor } from '../helpers.js';
import { freshSchema, pgUrl } from '../pg.js';
import { daemonFiles } from '../pg-copy.js';

type Row = Record<string, unknown>;
const log = createLogger({ level: 'silent' });

/** A value as both stores' readers compare it: JSON by its meaning, everything else as read. */
function normal(t: CarriedTable, row: Row): Row {
  const out: Row = {};
  for (const c of t.columns) {
    const v = row[c];
    out[c] = t.jsonb.has(c) && typeof v === 'string' ? JSON.parse(v) : v;
  }
  return out;
}

function sqliteRows(db: Database.Database, t: CarriedTable, schema = t.in): Row[] {
  return (
    db.prepare(`SELECT ${t.columns.map((c) => `"${c}"`).join(', ')} FROM ${schema}.${t.name}`).all() as Row[]
  )
    .map((r) => normal(t, r))
    .sort(byKey(t));
}

async function pgRows(pool: PgPool, schema: string, t: CarriedTable): Promise<Row[]> {
  const r = await pool.query<Row>(
    `SELECT ${t.columns.map((c) => `"${c}"`).join(', ')} FROM ${schema}.${t.name}`,
  );
  return r.rows.map((x) => normal(t, x)).sort(byKey(t));
}

const byKey = (t: CarriedTable) => (a: Row, b: Row) => {
  const ka = JSON.stringify(t.pk.map((c) => a[c]));
  const kb = JSON.stringify(t.pk.map((c) => b[c]));
  return ka < kb ? -1 : ka > kb ? 1 : 0;
};

describe.runIf(pgUrl)('the working copy and the Replicator (PostgreSQL)', () => {
  let dir: string;
  let source: Database.Database;
  const schema = freshSchema();
  let pool: PgPool;
  let lease: PgLease;
  const location = () => ({ url: pgUrl!, password: undefined, schema });

  beforeAll(async () => {
    dir = (await daemonFiles('zaptec-replica-')).dir;
    source = new Database(join(dir, 'zaptec.db'), { readonly: true });
    source.exec(`ATTACH '${join(dir, 'control.db')}' AS control`);
    pool = openPool(location(), { max: 3 });
    await migratePostgres(pool, schema);
    lease = new PgLease({ location: location() });
    expect(await lease.tryAcquire()).toBe(true);
  }, 90_000);
  afterAll(async () => {
    source?.close();
    await lease?.release();
    await pool?.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries everything a daemon wrote, in PostgreSQL’s types, notifying the changed chargers and sessions; a new copy loads it back', async () => {
    const copy = await WorkingCopy.load(pool, schema);
    // Pages of 7 keys: a flush of hundreds of rows is many transactions, and must land as one would.
    const replicator = new Replicator({ copy, pool, lease, schema, log, historyDays: 7, pageSize: 7 });
    const listener = new pg.Client({ connectionString: pgUrl });
    await listener.connect();
    const notified = { state: new Set<string>(), sessions: new Set<string>() };
    listener.on('notification', (n) => {
      const set = n.channel.endsWith('_state') ? notified.state : notified.sessions;
      for (const id of JSON.parse(n.payload ?? '[]') as string[]) set.add(id);
    });
    await listener.query(`LISTEN ${schema}_state; LISTEN ${schema}_sessions`);
    try {
      // Everything of the real daemon's files, written through the copy's connection (its triggers see it).
      copy.db.exec(`ATTACH '${join(dir, 'zaptec.db')}' AS src; ATTACH '${join(dir, 'control.db')}' AS srcc`);
      copy.db.transaction(() => {
        // What the copy was made with (the migrations' seeds) goes, as the daemon's constants pass replaces it.
        for (const t of [...copy.tables].reverse()) copy.db.exec(`DELETE FROM ${t.in}.${t.name}`);
        for (const t of copy.tables) {
          const from = t.in === 'main' ? 'src' : 'srcc';
          const cols = t.columns.map((c) => `"${c}"`).join(', ');
          copy.db.exec(
            `INSERT OR REPLACE INTO ${t.in}.${t.name} (${cols}) SELECT ${cols} FROM ${from}.${t.name}`,
          );
        }
      })();
      copy.db.exec('DETACH src; DETACH srcc');
      await replicator.flush();
      let checked = 0;
      for (const t of copy.tables) {
        const want = sqliteRows(source, t);
        expect(await pgRows(pool, schema, t), t.name).toEqual(want);
        checked += want.length;
      }
      expect(checked).toBeGreaterThan(100);
      await waitFor(() => notified.state.size === 6, { what: 'the six chargers notified' });
      const sessions = source.prepare('SELECT id FROM charging_sessions').all() as { id: string }[];
      await waitFor(() => notified.sessions.size === sessions.length, { what: 'every session notified' });
      expect(notified.sessions).toEqual(new Set(sessions.map((s) => s.id)));

      // A change and a delete are carried too; the changed charger alone is notified.
      notified.state.clear();
      const charger = (
        source.prepare('SELECT charger_id FROM charger_state LIMIT 1').get() as { charger_id: string }
      ).charger_id;
      copy.db
        .prepare("UPDATE charger_state SET value = 'changed' WHERE charger_id = ? AND state_id = 710")
        .run(charger);
      copy.db.prepare('DELETE FROM reconcile_spacing').run();
      copy.db.prepare("INSERT INTO reconcile_spacing (charger_id, spacing_ms) VALUES ('gone', 1)").run();
      copy.db.prepare("DELETE FROM reconcile_spacing WHERE charger_id = 'gone'").run();
      await replicator.flush();
      const [changed] = (
        await pool.query(
          `SELECT value FROM ${schema}.charger_state WHERE charger_id = $1 AND state_id = 710`,
          [charger],
        )
      ).rows;
      expect(changed?.value).toBe('changed');
      expect((await pool.query(`SELECT * FROM ${schema}.reconcile_spacing`)).rows).toEqual([]);
      await waitFor(() => notified.state.size === 1, { what: 'the changed charger notified' });
      expect([...notified.state]).toEqual([charger]);

      // A new copy, as a daemon taking over makes it, holds the same rows (the history is not loaded).
      const again = await WorkingCopy.load(pool, schema);
      try {
        for (const t of again.tables) {
          if (t.name === 'charger_state_history') {
            expect(sqliteRows(again.db, t)).toEqual([]);
            continue;
          }
          expect(sqliteRows(again.db, t), t.name).toEqual(sqliteRows(copy.db, t));
        }
      } finally {
        again.close();
      }
    } finally {
      await listener.end();
      copy.close();
    }
  });

  it('a copy whose daemon lost the lease lands nothing', async () => {
    const copy = await WorkingCopy.load(pool, schema);
    const other = new PgLease({ location: location() });
    const lost = new PgLease({ location: location() });
    try {
      await lease.release();
      expect(await lost.tryAcquire()).toBe(true);
      const replicator = new Replicator({ copy, pool, lease: lost, schema, log, historyDays: 7 });
      copy.db.prepare("INSERT INTO reconcile_spacing (charger_id, spacing_ms) VALUES ('fenced', 1)").run();
      await lost.release(); // as a cut connection or a frozen process would
      expect(await other.tryAcquire()).toBe(true);
      await expect(replicator.flush()).rejects.toBeInstanceOf(LeaseLostError);
      expect(
        (await pool.query(`SELECT * FROM ${schema}.reconcile_spacing WHERE charger_id = 'fenced'`)).rows,
      ).toEqual([]);
    } finally {
      await other.release();
      copy.close();
    }
  });
});
