/**
 * `run` against PostgreSQL (CONTRACT §9): one active daemon per schema, any number of standbys.
 *
 * Every instance keeps its own row in `daemons` (role, heartbeat) and competes for the schema's lease (a
 * session advisory lock, store/postgres/lease.ts). A standby does nothing else: no API call, no Service Bus
 * connection, no other write. The holder drains the writes of an earlier holder, loads a working copy of the
 * schema (store/postgres/working-copy.ts) and runs the daemon on it, every change carried to PostgreSQL by
 * the Replicator in transactions that prove the lease. When the lease is lost (the connection cut, the session
 * ended while the process was frozen) the daemon stops — its writes are already refused — and the instance is
 * a standby again. A clean stop carries the last changes and gives the lease up at once.
 */
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { type Config, ConfigError, type PostgresLocation } from '../config.js';
import { describeError, type Logger } from '../log.js';
import { DatabaseSetupError, isSetupFault } from '../store/database.js';
import { LeaseLostError, PgLease } from '../store/postgres/lease.js';
import { latestPgSchemaVersion, migratePostgres, pgSchemaVersion } from '../store/postgres/migrate.js';
import {
  describeLocation,
  inTransaction,
  openPool,
  type PgPool,
  storeFault,
} from '../store/postgres/pool.js';
import { Replicator } from '../store/postgres/replicator.js';
import { RequestPuller } from '../store/postgres/request-pull.js';
import { WorkingCopy } from '../store/postgres/working-copy.js';
import { HEARTBEAT_INTERVAL_MS } from '../sync/daemon.js';
import type { Notifier } from '../sync/notify.js';
import { delay, every, systemClock } from '../time.js';
import type { ServeOptions } from './run.js';

/** How often a standby tries the lease: a clean stop of the active one is taken over within a second. */
const LEASE_RETRY_MS = 1_000;
/** How long an instance that lost the lease waits before it competes again. */
const LOST_BACKOFF_MS = 5_000;

export interface PostgresRunOptions {
  config: Config;
  location: PostgresLocation;
  log: Logger;
  notifier: Notifier;
  /** Resolves on SIGTERM/SIGINT. */
  stopped: Promise<void>;
  serve: (o: Omit<ServeOptions, 'setHup'>) => Promise<void>;
  cannotStart: (err: unknown) => number;
}

type Role = 'active' | 'standby' | 'stopped';

/** This instance's row in `daemons`: written at each change of role and every heartbeat. */
class InstanceRow {
  readonly instance: string;
  readonly #pool: PgPool;
  readonly #startedAt = new Date().toISOString();
  role: Role = 'standby';
  #failing = false;
  #chain: Promise<void> = Promise.resolve();
  readonly #log: Logger;

  /** Whether the last write of the row succeeded. */
  get written(): boolean {
    return !this.#failing;
  }

  constructor(pool: PgPool, log: Logger) {
    this.#pool = pool;
    this.#log = log;
    this.instance = `${hostname()}:${process.pid}:${Date.now()}`;
  }

  /**
   * The row with this role and a new heartbeat. `active` is written only while the lease is proved in the same
   * transaction (a resumed process that lost it must not show itself active again), and it marks the rows of
   * earlier active instances stopped: they lost the lease, whether or not they know it yet.
   */
  write(role?: Role, lease?: PgLease): Promise<void> {
    // One write at a time, each with the role it is given or the role of the moment it runs: a heartbeat
    // queued behind a change of role must not write the role from before it.
    this.#chain = this.#chain.then(() => this.#write(role ?? this.role, lease));
    return this.#chain;
  }

  async #write(role: Role, lease: PgLease | undefined): Promise<void> {
    this.role = role;
    try {
      await inTransaction(this.#pool, async (client) => {
        if (role === 'active') {
          if (!lease) throw new LeaseLostError('no lease');
          await lease.proveHeld(client);
          await client.query(`UPDATE daemons SET role = 'stopped' WHERE role = 'active' AND instance <> $1`, [
            this.instance,
          ]);
        }
        await client.query(
          `INSERT INTO daemons (instance, host, pid, role, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, now())
           ON CONFLICT (instance) DO UPDATE SET role = excluded.role, heartbeat_at = excluded.heartbeat_at`,
          [this.instance, hostname(), process.pid, role, this.#startedAt],
        );
      });
      if (this.#failing) this.#log.info('this instance’s row in daemons is written again');
      this.#failing = false;
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.role = 'standby';
        return;
      }
      this.#report(err);
    }
  }

  #report(err: unknown): void {
    if (!this.#failing)
      this.#log.warn({ err: describeError(err) }, 'cannot write this instance’s row in daemons');
    this.#failing = true;
  }
}

/**
 * A standby's `/healthz` and `/metrics` on ZAPTEC_METRICS (the active daemon serves its own there): healthy
 * while its row in `daemons` is written, and `zaptec_active 0`.
 */
class StandbyEndpoint {
  #server: Server | undefined;
  readonly #me: InstanceRow;

  constructor(me: InstanceRow) {
    this.#me = me;
  }

  async start(metrics: { host: string; port: number } | undefined): Promise<void> {
    if (!metrics || this.#server) return;
    const server = createServer((req, res) => {
      if (req.url === '/healthz') {
        const ok = this.#me.written;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ok ? 'standby: healthy, ready to take over\n' : 'standby: cannot write its row in daemons\n');
      } else if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(
          '# HELP zaptec_active 1 while this instance is the active daemon\n' +
            '# TYPE zaptec_active gauge\nzaptec_active 0\n',
        );
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'].includes(err.code ?? '')
            ? new ConfigError(
                'ZAPTEC_METRICS',
                `cannot listen on ${metrics.host}:${metrics.port} (${err.code})`,
              )
            : err,
        ),
      );
      server.listen(metrics.port, metrics.host, () => resolve());
    });
    this.#server = server;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export async function runOnPostgres(o: PostgresRunOptions): Promise<number> {
  const { config, location, log } = o;
  const schema = location.schema;
  // A process frozen inside a transaction must not hold the fence for long: the server ends such a session
  // after 5 s, and the next holder's drain goes on.
  const pool = openPool(location, { max: 4, name: 'zaptec-sync', idleInTransactionMs: 5_000 });
  try {
    await prepareSchema(pool, schema);
  } catch (err) {
    await pool.end().catch(() => {});
    return o.cannotStart(storeFault(location, err));
  }
  let stopping = false;
  void o.stopped.then(() => {
    stopping = true;
  });
  const me = new InstanceRow(pool, log);
  await me.write('standby');
  const endpoint = new StandbyEndpoint(me);
  try {
    await endpoint.start(config.metrics);
  } catch (err) {
    await me.write('stopped');
    await pool.end().catch(() => {});
    return o.cannotStart(err);
  }
  let current: PgLease | undefined;
  // The instance's heartbeat, on the clock `run` keeps (real time). Neither the row's write nor the notifier
  // rejects: each reports its own failures.
  const beatStop = new AbortController();
  const beating = every(
    systemClock,
    HEARTBEAT_INTERVAL_MS,
    () => {
      void me.write(undefined, current);
      // Also while a takeover loads its working copy (the daemon's own heartbeat pings once it runs).
      if (config.watchdogUsec !== undefined) void o.notifier.watchdog();
      if (me.role === 'standby')
        void o.notifier.status(`standby: another instance holds the lease of ${describeLocation(location)}`);
    },
    beatStop.signal,
  );
  log.info({ instance: me.instance, store: describeLocation(location) }, 'started; competing for the lease');
  void o.notifier.ready(`standby: waiting for the lease of ${describeLocation(location)}`);
  let code = 0;
  let failing = false;
  try {
    while (!stopping) {
      let lost!: (why: string) => void;
      const lostLease = new Promise<string>((resolve) => {
        lost = resolve;
      });
      const lease = new PgLease({ location, onLost: (why) => lost(why) });
      current = lease;
      try {
        while (!stopping && !(await lease.tryAcquire())) await delay(LEASE_RETRY_MS);
        if (failing) log.info('PostgreSQL answers again');
        failing = false;
      } catch (err) {
        await lease.release();
        if (!failing)
          log.error({ err: describeError(err) }, 'cannot reach PostgreSQL for the lease; trying again');
        failing = true;
        await Promise.race([delay(LEASE_RETRY_MS), o.stopped]);
        continue;
      }
      if (stopping) {
        await lease.release();
        break;
      }
      await endpoint.stop(); // the active daemon serves ZAPTEC_METRICS itself
      const outcome = await activeTerm({ ...o, pool, lease, me, lostLease });
      if (typeof outcome === 'number') {
        code = outcome;
        break;
      }
      await endpoint.start(config.metrics).catch((err: unknown) => {
        log.warn({ err: describeError(err) }, 'the standby cannot serve /healthz and /metrics');
      });
      if (outcome === 'lost') {
        await me.write('standby');
        // An instance that lost the lease lets the others take it first: its connection or its host is suspect.
        await Promise.race([delay(LOST_BACKOFF_MS), o.stopped]);
      }
    }
  } finally {
    beatStop.abort();
    await beating;
    await endpoint.stop();
    await me.write('stopped');
    await pool.end().catch(() => {});
  }
  if (code === 0) log.info('stopped');
  return code;
}

/**
 * One term as the active daemon: until a stop ('stopped'), the lease lost ('lost'), or a start that cannot
 * succeed (an exit status).
 */
async function activeTerm(
  o: PostgresRunOptions & { pool: PgPool; lease: PgLease; me: InstanceRow; lostLease: Promise<string> },
): Promise<'stopped' | 'lost' | number> {
  const { config, location, log, pool, lease, me } = o;
  let copy: WorkingCopy | undefined;
  let replicator: Replicator | undefined;
  let puller: RequestPuller | undefined;
  let lostWhy: string | undefined;
  void o.lostLease.then((why) => {
    lostWhy = why;
    log.error(
      { why },
      'lost the lease: this instance stops its work (its writes are refused) and is a standby again',
    );
  });
  try {
    await lease.drain();
    await me.write('active', lease);
    if (me.role !== 'active') throw new LeaseLostError('the lease was lost at once');
    log.info({ instance: me.instance }, 'took the lease: this instance is active');
    copy = await WorkingCopy.load(pool, location.schema);
    replicator = new Replicator({
      copy,
      pool,
      lease,
      schema: location.schema,
      log: log.child({ component: 'store' }),
      historyDays: config.historyDays,
    });
    replicator.start();
    puller = new RequestPuller({
      copy,
      pool,
      schema: location.schema,
      log: log.child({ component: 'store' }),
    });
    puller.start();
    const r = replicator;
    await o.serve({
      config: { ...config, dbPath: copy.path, controlDbPath: copy.controlPath },
      db: copy.db,
      log,
      notifier: o.notifier,
      until: Promise.race([o.stopped, o.lostLease]),
      durable: () => r.flush(),
      schemaVersion: latestPgSchemaVersion(),
    });
    await puller.stop();
    await replicator.stop();
    if (lostWhy === undefined && lease.held) await replicator.flush();
    return lostWhy === undefined ? 'stopped' : 'lost';
  } catch (err) {
    await puller?.stop().catch(() => {});
    await replicator?.stop().catch(() => {});
    if (lostWhy !== undefined || err instanceof LeaseLostError) return 'lost';
    if (err instanceof ConfigError || isSetupFault(err)) return o.cannotStart(err);
    log.error({ err: describeError(err) }, 'the active term ended in an error; giving the lease up');
    await delay(LEASE_RETRY_MS);
    return 'lost';
  } finally {
    copy?.close();
    await lease.release();
  }
}

/** The schema made or brought up to date (`migrate`'s work; concurrent starts wait for each other). */
async function prepareSchema(pool: PgPool, schema: string): Promise<void> {
  const version = await pgSchemaVersion(pool, schema);
  const latest = latestPgSchemaVersion();
  if (version > latest)
    throw new DatabaseSetupError(
      `the schema ${schema} has version ${version}, newer than this zaptec-sync understands (${latest}); upgrade zaptec-sync`,
    );
  if (version < latest) await migratePostgres(pool, schema);
}
