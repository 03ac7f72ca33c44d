/**
 * One active daemon per account (CONTRACT §9, issue 28): the lease is a session advisory lock on the account's
 * schema, held on a connection of its own, so PostgreSQL itself releases it when the holder is gone — its
 * process killed, its connection cut, or (a frozen process that cannot answer) its session ended by the
 * server's `idle_session_timeout`, which the holder keeps from firing by touching the session every few seconds.
 *
 * Fencing: a write proves the lease in its own transaction (`proveHeld`): the lock must be held by the backend of
 * this lease's connection. A holder that lost the lease without noticing yet (frozen, then resumed) has its
 * writes refused by the database, whatever it believes.
 */
import pg from 'pg';
import type { PostgresLocation } from '../../config.js';
import { delay } from '../../time.js';
import { connectionString } from './pool.js';

/** The lock's first key: the same for every zaptec-sync (the second is the schema's). */
const LEASE_KIND = 'zaptec-sync lease';
/** The fence's first key: every fenced write holds it shared while it runs (see `proveHeld`). */
const FENCE_KIND = 'zaptec-sync fence';

/** How often the holder touches its session; the server ends it after `idleTimeoutMs` without one. */
const TOUCH_EVERY_MS = 2_000;

export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
}

export interface LeaseOptions {
  location: PostgresLocation;
  /**
   * How long the server waits for a silent holder before it ends the session and frees the lease (a frozen
   * process): the larger part of the 30 s a standby has to take over.
   */
  idleTimeoutMs?: number;
  /** How often the holder touches its session (tests make it rarer than the timeout: a frozen holder). */
  touchEveryMs?: number;
  /** Told once when a held lease is lost (the connection cut or ended by the server). */
  onLost?: (why: string) => void;
}

export class PgLease {
  readonly #o: LeaseOptions;
  #client: pg.Client | undefined;
  /** The backend process holding the lock for this lease while it is held. */
  #backend: number | undefined;
  #touching: Promise<void> | undefined;
  readonly #stop = new AbortController();

  constructor(options: LeaseOptions) {
    this.#o = options;
  }

  get held(): boolean {
    return this.#backend !== undefined;
  }

  /** Takes the lease if nobody holds it; false when another instance does. Never waits. */
  async tryAcquire(): Promise<boolean> {
    if (this.held) return true;
    const client = await this.#connect();
    const r = await client.query<{ ok: boolean; pid: number }>(
      'SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS ok, pg_backend_pid() AS pid',
      [LEASE_KIND, this.#o.location.schema],
    );
    const { ok, pid } = r.rows[0]!;
    if (!ok) return false;
    this.#backend = pid;
    this.#touching = this.#touch(client);
    return true;
  }

  /**
   * Inside a write transaction on any connection of the store: throws LeaseLostError unless this lease's
   * backend still holds the lock. The transaction then rolls back, and nothing it wrote lands.
   *
   * The transaction first takes the fence (a shared transaction lock) and only then looks at the lease: a new
   * holder's `drain()` waits for the fence, so a write that proved the lease before it changed hands has
   * committed or rolled back before the new holder reads or writes anything.
   */
  async proveHeld(tx: Pick<pg.ClientBase, 'query'>): Promise<void> {
    const backend = this.#backend;
    if (backend === undefined) throw new LeaseLostError('this instance does not hold the lease');
    await tx.query('SELECT pg_advisory_xact_lock_shared(hashtext($1), hashtext($2))', [
      FENCE_KIND,
      this.#o.location.schema,
    ]);
    const r = await tx.query<{ held: boolean }>(
      `SELECT EXISTS (
         SELECT 1 FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND pid = $1
           AND classid = hashtext($2)::oid AND objid = hashtext($3)::oid AND objsubid = 2
       ) AS held`,
      [backend, LEASE_KIND, this.#o.location.schema],
    );
    if (!r.rows[0]!.held) {
      this.#lose('the database no longer sees this instance holding the lease');
      throw new LeaseLostError('the lease was lost: another instance may be active');
    }
  }

  /**
   * After taking the lease: waits until no write of an earlier holder that proved the lease is still under
   * way (their transactions hold the fence), so everything it wrote is there to be read.
   */
  async drain(): Promise<void> {
    const client = this.#client;
    if (!client || !this.held) throw new LeaseLostError('this instance does not hold the lease');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [
      FENCE_KIND,
      this.#o.location.schema,
    ]);
  }

  /** Gives the lease up at once (a clean stop: a standby takes over without waiting). */
  async release(): Promise<void> {
    this.#stop.abort();
    const client = this.#client;
    this.#client = undefined;
    this.#backend = undefined;
    await this.#touching?.catch(() => {});
    if (client) await client.end().catch(() => {}); // ending the session frees its locks
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const { location } = this.#o;
    const idle = this.#o.idleTimeoutMs ?? 10_000;
    const client = new pg.Client({
      connectionString: connectionString(location),
      application_name: 'zaptec-sync lease',
      options: `-c idle_session_timeout=${idle}`,
      // The kernel notices a dead server or network within seconds, not hours.
      keepAlive: true,
      keepAliveInitialDelayMillis: 5_000,
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', (err) => this.#lose(`its connection failed (${err.message})`));
    client.on('end', () => this.#lose('its connection ended'));
    await client.connect();
    this.#client = client;
    return client;
  }

  /** Keeps the session from being ended as idle while this process runs; a failed touch is a lost lease. */
  async #touch(client: pg.Client): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted && this.#client === client) {
      // Real time, not the injected clock: the server's idle timeout that this keeps away counts real time.
      await delay(this.#o.touchEveryMs ?? TOUCH_EVERY_MS, signal).catch(() => {});
      if (signal.aborted || this.#client !== client) return;
      try {
        await client.query('SELECT 1');
      } catch (err) {
        this.#lose(`its connection failed (${(err as Error).message})`);
      }
    }
  }

  #lose(why: string): void {
    if (this.#stop.signal.aborted) return;
    const client = this.#client;
    this.#client = undefined;
    const wasHeld = this.#backend !== undefined;
    this.#backend = undefined;
    client?.end().catch(() => {});
    if (wasHeld) this.#o.onLost?.(why);
  }
}
