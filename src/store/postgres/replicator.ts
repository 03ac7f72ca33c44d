/**
 * Carries the working copy's changes to PostgreSQL (CONTRACT §9): the rows the copy's triggers named, read in
 * one synchronous step, written in one transaction that first proves the lease (fencing: a daemon that lost
 * it writes nothing), followed by `NOTIFY <schema>_state` with the changed chargers and `<schema>_sessions`
 * with the changed sessions. `flush()` is the daemon's durability: a live message is completed, a request
 * sent, only after the flush that covers its commit has committed in PostgreSQL. Concurrent callers share
 * the next flush (a group commit, as WalSync is for SQLite); between them a background flush every 200 ms
 * carries what nothing waits for (inventory, status, the heartbeat).
 */
import type pg from 'pg';
import { describeError, type Logger } from '../../log.js';
import { delay } from '../../time.js';
import { GroupCommit } from '../durability.js';
import type { PgLease } from './lease.js';
import { notifyPayload } from './observations.js';
import { inTransaction, type PgPool } from './pool.js';
import { type CarriedTable, quote, type WorkingCopy } from './working-copy.js';

/** How often changes nothing waits for are carried. */
const BACKGROUND_MS = 200;
/** Rows per statement: one JSON parameter each, a few MB at most. */
const CHUNK = 1_000;
/** Changed keys per transaction: the rows of a page are read in one synchronous step (a few ms). */
const PAGE = 2_000;
/** How often PostgreSQL's history is pruned (the copy's own pruner does not reach rows it never loaded). */
const PRUNE_EVERY_MS = 3_600_000;

interface Snapshot {
  maxSeq: number;
  upserts: Map<CarriedTable, Record<string, unknown>[]>;
  deletes: Map<CarriedTable, Record<string, unknown>[]>;
  chargers: Set<string>;
  sessions: Set<string>;
}

export interface ReplicatorOptions {
  copy: WorkingCopy;
  pool: PgPool;
  lease: PgLease;
  schema: string;
  log: Logger;
  /** ZAPTEC_HISTORY_DAYS: PostgreSQL's history is pruned to it. */
  historyDays: number;
  /** Changed keys per transaction (PAGE; tests make it small). */
  pageSize?: number;
}

export class Replicator {
  readonly #o: ReplicatorOptions;
  readonly #changes: import('better-sqlite3').Statement<
    [number, number],
    { seq: number; tbl: string; pk: string }
  >;
  readonly #clear: import('better-sqlite3').Statement<[number]>;
  readonly #pending: import('better-sqlite3').Statement<[], { n: number | null }>;
  readonly #byKey = new Map<string, import('better-sqlite3').Statement>();
  readonly #group = new GroupCommit(() => this.#once());
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #failing = false;
  #prunedAt = 0;

  constructor(o: ReplicatorOptions) {
    this.#o = o;
    const db = o.copy.db;
    this.#changes = db.prepare('SELECT seq, tbl, pk FROM zs_changes WHERE seq <= ? ORDER BY seq LIMIT ?');
    this.#clear = db.prepare('DELETE FROM zs_changes WHERE seq <= ?');
    this.#pending = db.prepare('SELECT max(seq) AS n FROM zs_changes');
    for (const t of o.copy.tables)
      this.#byKey.set(
        t.name,
        db.prepare(
          `SELECT ${t.columns.map(quote).join(', ')} FROM ${t.in}.${t.name} WHERE ${t.pk.map((c) => `${quote(c)} = ?`).join(' AND ')}`,
        ),
      );
  }

  /** Whether a flush is under way (the simulated world waits for it before moving its clock). */
  get busy(): boolean {
    return this.#group.busy;
  }

  /** Starts the background flush. */
  start(): void {
    this.#loop = this.#background();
  }

  /** Stops the background flush; a last `flush()` is the caller's (while the lease is still held). */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  /** Resolves once every change made before this call is committed in PostgreSQL; rejects if it could not be. */
  flush(): Promise<void> {
    return this.#group.next();
  }

  async #background(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await delay(BACKGROUND_MS, signal).catch(() => {});
      if (signal.aborted) return;
      try {
        if (this.#o.copy.db.open && this.#pending.get()?.n != null) await this.flush();
        if (Date.now() - this.#prunedAt >= PRUNE_EVERY_MS) await this.#prune();
        if (this.#failing) this.#o.log.info('changes are carried to PostgreSQL again');
        this.#failing = false;
      } catch (err) {
        if (!this.#failing)
          this.#o.log.error(
            { err: describeError(err) },
            'cannot carry changes to PostgreSQL; they are kept and carried when it takes them',
          );
        this.#failing = true;
      }
    }
  }

  /**
   * Every change recorded before the call, in pages of PAGE keys: each page read in one synchronous step (a
   * few ms) and written in one transaction, the event loop free between pages. A row is read as it is when
   * its page is read, newer than or as new as the change that named it.
   */
  async #once(): Promise<void> {
    if (!this.#o.copy.db.open) return;
    const until = this.#pending.get()?.n;
    if (until == null) return;
    for (;;) {
      const snapshot = this.#snapshot(until);
      if (!snapshot) return;
      await this.#carry(snapshot);
      if (snapshot.maxSeq >= until) return;
    }
  }

  async #carry(snapshot: Snapshot): Promise<void> {
    await this.#fenced(async (client) => {
      const s = this.#o.schema;
      for (const [t, rows] of snapshot.upserts)
        for (let i = 0; i < rows.length; i += CHUNK) await upsert(client, s, t, rows.slice(i, i + CHUNK));
      for (const [t, keys] of [...snapshot.deletes].reverse())
        for (let i = 0; i < keys.length; i += CHUNK) await remove(client, s, t, keys.slice(i, i + CHUNK));
      if (snapshot.chargers.size > 0)
        await client.query('SELECT pg_notify($1, $2)', [`${s}_state`, notifyPayload([...snapshot.chargers])]);
      if (snapshot.sessions.size > 0)
        await client.query('SELECT pg_notify($1, $2)', [
          `${s}_sessions`,
          notifyPayload([...snapshot.sessions]),
        ]);
    });
    if (this.#o.copy.db.open) this.#clear.run(snapshot.maxSeq);
  }

  /** The changed rows as they are now, in one synchronous step: a consistent state of the copy. */
  #snapshot(until: number): Snapshot | undefined {
    if (!this.#o.copy.db.open) return undefined;
    const changes = this.#changes.all(until, this.#o.pageSize ?? PAGE);
    if (changes.length === 0) return undefined;
    const keys = new Map<string, Map<string, unknown[]>>();
    for (const c of changes) {
      let m = keys.get(c.tbl);
      if (!m) {
        m = new Map();
        keys.set(c.tbl, m);
      }
      if (!m.has(c.pk)) m.set(c.pk, JSON.parse(c.pk) as unknown[]);
    }
    const snapshot: Snapshot = {
      maxSeq: changes[changes.length - 1]!.seq,
      upserts: new Map(),
      deletes: new Map(),
      chargers: new Set(),
      sessions: new Set(),
    };
    for (const t of this.#o.copy.tables) {
      const m = keys.get(t.name);
      if (!m) continue;
      const get = this.#byKey.get(t.name)!;
      const up: Record<string, unknown>[] = [];
      const gone: Record<string, unknown>[] = [];
      for (const pk of m.values()) {
        const row = get.get(...pk) as Record<string, unknown> | undefined;
        if (row) up.push(toPostgres(t, row));
        else if (!t.insertOnly) gone.push(Object.fromEntries(t.pk.map((c, i) => [c, pk[i]])));
        if (row && t.name === 'charger_state') snapshot.chargers.add(row.charger_id as string);
        if (row && t.name === 'charging_sessions') snapshot.sessions.add(row.id as string);
      }
      if (up.length) snapshot.upserts.set(t, up);
      if (gone.length) snapshot.deletes.set(t, gone);
    }
    return snapshot;
  }

  /** History older than ZAPTEC_HISTORY_DAYS, pruned in PostgreSQL (fenced like every write). */
  async #prune(): Promise<void> {
    this.#prunedAt = Date.now();
    if (this.#o.historyDays <= 0) return;
    const cutoff = new Date(Date.now() - this.#o.historyDays * 86_400_000).toISOString();
    await this.#fenced(async (client) => {
      await client.query(`DELETE FROM ${this.#o.schema}.charger_state_history WHERE observed_at < $1`, [
        cutoff,
      ]);
    });
  }

  /** One transaction that proves the lease first: nothing of it lands if this daemon lost the lease. */
  #fenced(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    return inTransaction(this.#o.pool, async (client) => {
      await this.#o.lease.proveHeld(client);
      await work(client);
    });
  }
}

/** A copy's row as `jsonb_populate_recordset` takes it: jsonb as JSON, flags as booleans, integers whole. */
function toPostgres(t: CarriedTable, row: Record<string, unknown>): Record<string, unknown> {
  for (const c of t.jsonb) {
    const v = row[c];
    if (typeof v === 'string') {
      try {
        row[c] = JSON.parse(v);
      } catch {
        // Not JSON (never written so by the daemon): kept as a JSON string rather than lost.
      }
    }
  }
  for (const c of t.boolean) if (row[c] !== null && row[c] !== undefined) row[c] = Boolean(row[c]);
  for (const c of t.integer) if (typeof row[c] === 'number') row[c] = Math.round(row[c] as number);
  return row;
}

async function upsert(
  client: pg.PoolClient,
  schema: string,
  t: CarriedTable,
  rows: Record<string, unknown>[],
): Promise<void> {
  const cols = t.columns.map(quote).join(', ');
  const rest = t.columns.filter((c) => !t.pk.includes(c));
  const onConflict =
    t.insertOnly || rest.length === 0
      ? 'DO NOTHING'
      : `DO UPDATE SET ${rest.map((c) => `${quote(c)} = excluded.${quote(c)}`).join(', ')}`;
  await client.query(
    `INSERT INTO ${schema}.${t.name} (${cols}) OVERRIDING SYSTEM VALUE
     SELECT ${cols} FROM jsonb_populate_recordset(NULL::${schema}.${t.name}, $1::jsonb)
     ON CONFLICT (${t.pk.map(quote).join(', ')}) ${onConflict}`,
    [JSON.stringify(rows)],
  );
}

async function remove(
  client: pg.PoolClient,
  schema: string,
  t: CarriedTable,
  keys: Record<string, unknown>[],
): Promise<void> {
  const pk = t.pk.map(quote).join(', ');
  await client.query(
    `DELETE FROM ${schema}.${t.name} WHERE (${pk}) IN
       (SELECT ${pk} FROM jsonb_populate_recordset(NULL::${schema}.${t.name}, $1::jsonb))`,
    [JSON.stringify(keys)],
  );
}
