/**
 * The active daemon's working copy of a PostgreSQL schema (CONTRACT §9): a private SQLite file, loaded from
 * the schema when the daemon takes the lease, on which every rule of the daemon runs as it does on a SQLite
 * store (the same statements, synchronous and fast), and whose every change is carried to PostgreSQL by the
 * Replicator before anything depends on it (a message completed, a request sent). PostgreSQL stays the
 * store of record: the copy is made again from it at each takeover and deleted at the stop.
 *
 * Changes are captured by TEMP triggers of the daemon's own connection into `temp.zs_changes` (table and
 * primary key); the Replicator reads those keys and the rows they name in one synchronous step, so what it
 * carries is always a consistent state of the copy.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { attachControl } from '../control.js';
import { BUSY_TIMEOUT_MS, type Db, openDatabase } from '../database.js';
import { inTransaction, type PgPool } from './pool.js';

/** A table both stores have, as the working copy carries it. */
export interface CarriedTable {
  /** The SQLite database it is in: the main file or the attached control file. */
  in: 'main' | 'control';
  name: string;
  pk: string[];
  /** Columns both stores have. */
  columns: string[];
  jsonb: Set<string>;
  boolean: Set<string>;
  /** integer and bigint columns: SQLite keeps a fraction given to them (a simulated clock's milliseconds). */
  integer: Set<string>;
  /** Only new rows are carried; PostgreSQL prunes its own (the history, which is not loaded either). */
  insertOnly: boolean;
}

/** Parents before children: charging_session_energy references charging_sessions. */
const PARENTS_FIRST = ['charging_sessions'];
/** Tables the daemon keeps apart: each instance's own row, and the migrations' version. */
const NOT_CARRIED = new Set(['schema_version', 'daemons']);
/** How far back sessions are loaded: charge history never revises sessions older than its look-back. */
const SESSIONS_LOADED_DAYS = 40;
/** Rows per page of a takeover's load (a few ms to write each). */
const LOAD_PAGE = 5_000;

/**
 * What a takeover loads of each table (a PostgreSQL WHERE); every row where none is named. The history is not
 * loaded (nothing reads it back); sessions and answered requests only as far as the daemon may change them.
 */
const RECENT_SESSION = `ended_at IS NULL OR ended_at > $1::timestamptz - interval '${SESSIONS_LOADED_DAYS} days' OR updated_at > $1::timestamptz - interval '${SESSIONS_LOADED_DAYS} days'`;
/** `$1` stands for the daemon's now (its clock, which the simulated world injects). */
const LOAD_WHERE: Record<string, string | null> = {
  charger_state_history: null,
  charging_sessions: RECENT_SESSION,
  charging_session_energy: `session_id IN (SELECT id FROM charging_sessions WHERE ${RECENT_SESSION})`,
  refresh_requests: `handled_at IS NULL OR requested_at > $1::timestamptz - interval '1 day'`,
  commands: `status <> 'done' OR requested_at > $1::timestamptz - interval '1 day'`,
};

export class WorkingCopy {
  readonly db: Db;
  readonly dir: string;
  readonly path: string;
  readonly controlPath: string;
  readonly tables: CarriedTable[];

  private constructor(dir: string, db: Db, tables: CarriedTable[]) {
    this.dir = dir;
    this.db = db;
    this.path = join(dir, 'zaptec.db');
    this.controlPath = join(dir, 'control.db');
    this.tables = tables;
  }

  /**
   * A new copy of the schema: the SQLite schema made, every carried table loaded, then the capture of changes
   * switched on. The copy's directory is private to this process (`$STATE_DIRECTORY` or the temporary one).
   */
  static async load(pool: PgPool, schema: string, now = Date.now()): Promise<WorkingCopy> {
    const parent = process.env.STATE_DIRECTORY || tmpdir();
    removeAbandoned(parent);
    const dir = mkdtempSync(join(parent, `${PREFIX}${process.pid}-`));
    let db: Db | undefined;
    try {
      db = openDatabase(join(dir, 'zaptec.db'), { create: true, daemon: true });
      // PostgreSQL holds what must survive; the copy needs no sync of its own.
      db.pragma('synchronous = OFF');
      attachControl(db, join(dir, 'control.db'));
      db.pragma('control.synchronous = OFF');
      const tables = await carriedTables(pool, schema, db);
      const copy = new WorkingCopy(dir, db, tables);
      await copy.#fill(pool, schema, now);
      copy.#capture();
      return copy;
    } catch (err) {
      db?.close();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A second connection to the copy's control file: what it commits moves the daemon's `data_version`. */
  openControlWriter(): Db {
    const db = new Database(this.controlPath);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    return db;
  }

  close(): void {
    if (this.db.open) this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Every carried table's rows, read through a cursor in pages of LOAD_PAGE (one transaction, one snapshot of
   * the schema) and written page by page: a large account's state neither sits in memory whole nor holds the
   * event loop (the lease's touches go on between pages).
   */
  async #fill(pool: PgPool, schema: string, now: number): Promise<void> {
    await inTransaction(
      pool,
      async (client) => {
        for (const t of this.tables) {
          const where = t.name in LOAD_WHERE ? LOAD_WHERE[t.name] : '';
          if (where === null) continue;
          const cols = t.columns.map(quote).join(', ');
          // The schema's rows, not the SQLite migrations' seeds (a constants pass may have replaced them).
          this.db.prepare(`DELETE FROM ${t.in}.${t.name}`).run();
          const insert = this.db.prepare(
            `INSERT OR REPLACE INTO ${t.in}.${t.name} (${cols}) VALUES (${t.columns.map(() => '?').join(', ')})`,
          );
          const write = this.db.transaction((rows: Record<string, unknown>[]) => {
            for (const row of rows) insert.run(...t.columns.map((c) => row[c]));
          });
          // The time is ours (an ISO string), written into the text: DECLARE passes no parameters into subqueries.
          const at = `'${new Date(now).toISOString()}'`;
          await client.query(
            `DECLARE load_${t.name} NO SCROLL CURSOR FOR SELECT ${cols} FROM ${schema}.${t.name}${where ? ` WHERE ${where.replaceAll('$1', at)}` : ''}`,
          );
          for (;;) {
            const r = await client.query<Record<string, unknown>>(`FETCH ${LOAD_PAGE} FROM load_${t.name}`);
            write(r.rows);
            if (r.rows.length < LOAD_PAGE) break;
          }
          await client.query(`CLOSE load_${t.name}`);
        }
      },
      'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
    );
  }

  /** The TEMP triggers that record each changed row's key in `temp.zs_changes`. */
  #capture(): void {
    this.db.exec(
      'CREATE TEMP TABLE zs_changes (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL)',
    );
    for (const t of this.tables) {
      const key = (row: 'NEW' | 'OLD') => `json_array(${t.pk.map((c) => `${row}.${quote(c)}`).join(', ')})`;
      const record = (row: 'NEW' | 'OLD') =>
        `INSERT INTO zs_changes (tbl, pk) VALUES ('${t.name}', ${key(row)});`;
      const on = `${t.in}.${t.name}`;
      this.db.exec(`CREATE TEMP TRIGGER zs_i_${t.name} AFTER INSERT ON ${on} BEGIN ${record('NEW')} END`);
      if (t.insertOnly) continue;
      this.db.exec(
        `CREATE TEMP TRIGGER zs_u_${t.name} AFTER UPDATE ON ${on} BEGIN ${record('OLD')} ${record('NEW')} END`,
      );
      this.db.exec(`CREATE TEMP TRIGGER zs_d_${t.name} AFTER DELETE ON ${on} BEGIN ${record('OLD')} END`);
    }
  }
}

const PREFIX = 'zaptec-sync-work-';

/** Copies left by processes that were killed (a clean stop deletes its own): their pid no longer runs. */
function removeAbandoned(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (!pid || pid === process.pid || running(pid)) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The base tables of both stores, with the columns both have, parents first. */
async function carriedTables(pool: PgPool, schema: string, db: Db): Promise<CarriedTable[]> {
  const pgColumns = await pool.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
     JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position`,
    [schema],
  );
  const names = [...new Set(pgColumns.rows.map((c) => c.table_name))].filter((n) => !NOT_CARRIED.has(n));
  names.sort((a, b) => Number(PARENTS_FIRST.includes(b)) - Number(PARENTS_FIRST.includes(a)));
  const tables: CarriedTable[] = [];
  for (const name of names) {
    const where = (['main', 'control'] as const).find(
      (d) =>
        db.prepare(`SELECT 1 FROM ${d}.sqlite_master WHERE type = 'table' AND name = ?`).get(name) !==
        undefined,
    );
    if (!where) continue;
    const info = db.prepare(`PRAGMA ${where}.table_info(${name})`).all() as { name: string; pk: number }[];
    const pg = pgColumns.rows.filter((c) => c.table_name === name);
    const columns = pg.map((c) => c.column_name).filter((c) => info.some((i) => i.name === c));
    const pk = info
      .filter((i) => i.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((i) => i.name);
    tables.push({
      in: where,
      name,
      pk,
      columns,
      jsonb: new Set(pg.filter((c) => c.data_type === 'jsonb').map((c) => c.column_name)),
      boolean: new Set(pg.filter((c) => c.data_type === 'boolean').map((c) => c.column_name)),
      integer: new Set(
        pg.filter((c) => ['integer', 'bigint', 'smallint'].includes(c.data_type)).map((c) => c.column_name),
      ),
      insertOnly: name === 'charger_state_history',
    });
  }
  return tables;
}

/** A column name as both SQL dialects take it (`limit` is a keyword). */
export function quote(column: string): string {
  return `"${column}"`;
}
