/**
 * The lease of issue 28 against a real PostgreSQL: one holder per schema, released by the server when the
 * holder is gone (its connection cut, or a frozen holder's session ended as idle), and fencing — a write that
 * proves the lease in its transaction fails, and lands nothing, once the lease has gone elsewhere.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { PostgresLocation } from '../../src/config.js';
import { LeaseLostError, PgLease } from '../../src/store/postgres/lease.js';
import { waitFor } from '../helpers.js';
import { freshSchema, pgAdmin, pgUrl } from '../pg.js';

const leases: PgLease[] = [];
afterEach(async () => {
  for (const l of leases.splice(0)) await l.release();
});

function lease(
  schema: string,
  o: { idleTimeoutMs?: number; touchEveryMs?: number; lost?: string[] } = {},
): PgLease {
  const location: PostgresLocation = { url: pgUrl!, password: undefined, schema };
  const l = new PgLease({
    location,
    ...(o.idleTimeoutMs ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
    ...(o.touchEveryMs ? { touchEveryMs: o.touchEveryMs } : {}),
    onLost: (why) => o.lost?.push(why),
  });
  leases.push(l);
  return l;
}

/** The backend pid holding the schema's lease, from the server's own view. */
async function holderPid(schema: string): Promise<number | undefined> {
  const r = await pgAdmin().query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
       AND classid = hashtext('zaptec-sync lease')::oid AND objid = hashtext($1)::oid`,
    [schema],
  );
  return r.rows[0]?.pid;
}

/** A write transaction that proves the lease first, as every write of the active daemon does. */
async function fencedWrite(l: PgLease, table: string): Promise<void> {
  const client = await pgAdmin().connect();
  try {
    await client.query('BEGIN');
    await l.proveHeld(client);
    await client.query(`INSERT INTO ${table} VALUES (1)`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

describe.runIf(pgUrl)('the lease (PostgreSQL)', () => {
  it('one holder per schema; other schemas are apart; a release hands it over at once', async () => {
    const schema = freshSchema();
    const a = lease(schema);
    const b = lease(schema);
    const other = lease(freshSchema());
    expect(await a.tryAcquire()).toBe(true);
    expect(await b.tryAcquire()).toBe(false);
    expect(await other.tryAcquire()).toBe(true); // another account in the same database
    await a.release();
    expect(await b.tryAcquire()).toBe(true);
    expect(b.held).toBe(true);
  });

  it('a cut connection (pg_terminate_backend): the holder learns it at once, its writes fail, a standby takes it', async () => {
    const schema = freshSchema();
    const table = `${schema}_fence`;
    await pgAdmin().query(`CREATE TABLE ${table} (n int)`);
    const lost: string[] = [];
    const a = lease(schema, { lost });
    const b = lease(schema);
    expect(await a.tryAcquire()).toBe(true);
    await fencedWrite(a, table);
    await pgAdmin().query('SELECT pg_terminate_backend($1)', [await holderPid(schema)]);
    await waitFor(() => lost.length === 1, { timeoutMs: 5_000, what: 'the holder told of the loss' });
    expect(a.held).toBe(false);
    expect(await b.tryAcquire()).toBe(true);
    await expect(fencedWrite(a, table)).rejects.toBeInstanceOf(LeaseLostError);
    const rows = await pgAdmin().query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows.rows[0].n).toBe(1); // the one write made while it held the lease
    await pgAdmin().query(`DROP TABLE ${table}`);
  });

  it('a holder that touches its session keeps the lease past the idle timeout', async () => {
    const schema = freshSchema();
    const a = lease(schema, { idleTimeoutMs: 1_000, touchEveryMs: 300 });
    const b = lease(schema);
    expect(await a.tryAcquire()).toBe(true);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await b.tryAcquire()).toBe(false);
    expect(a.held).toBe(true);
  });

  it('a holder that goes silent (a frozen process): the server ends its session, a standby takes over, and its writes are refused', async () => {
    const schema = freshSchema();
    const table = `${schema}_fence`;
    await pgAdmin().query(`CREATE TABLE ${table} (n int)`);
    const lost: string[] = [];
    // Frozen: no touch comes within the idle timeout, as from a daemon stopped with SIGSTOP.
    const a = lease(schema, { idleTimeoutMs: 1_000, touchEveryMs: 60_000, lost });
    const b = lease(schema);
    expect(await a.tryAcquire()).toBe(true);
    const frozenAt = Date.now();
    await waitFor(async () => b.tryAcquire(), { timeoutMs: 10_000, what: 'the standby holding the lease' });
    expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(900);
    await expect(fencedWrite(a, table)).rejects.toBeInstanceOf(LeaseLostError);
    expect(lost).toHaveLength(1);
    const rows = await pgAdmin().query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows.rows[0].n).toBe(0);
    await pgAdmin().query(`DROP TABLE ${table}`);
  });

  it('a new holder drains the writes the old one began while it held the lease; one frozen inside its transaction is ended by the server', async () => {
    const schema = freshSchema();
    const table = `${schema}_fence`;
    await pgAdmin().query(`CREATE TABLE ${table} (n int)`);
    const a = lease(schema);
    const b = lease(schema);
    expect(await a.tryAcquire()).toBe(true);
    // A write that proved the lease, then went silent inside its transaction (its process frozen): the
    // daemon's sessions end such a transaction after idle_in_transaction_session_timeout.
    const frozen = new pg.Client({
      connectionString: pgUrl,
      options: '-c idle_in_transaction_session_timeout=1000',
    });
    frozen.on('error', () => {});
    await frozen.connect();
    await frozen.query('BEGIN');
    await a.proveHeld(frozen);
    await frozen.query(`INSERT INTO ${table} VALUES (1)`);
    await pgAdmin().query('SELECT pg_terminate_backend($1)', [await holderPid(schema)]);
    expect(await b.tryAcquire()).toBe(true);
    const started = Date.now();
    await b.drain();
    // The drain waited for the old transaction, and that one was ended: its write never lands.
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(frozen.query('COMMIT')).rejects.toThrow();
    const rows = await pgAdmin().query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows.rows[0].n).toBe(0);
    await frozen.end().catch(() => {});
    await pgAdmin().query(`DROP TABLE ${table}`);
  });
});
