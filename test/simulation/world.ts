/**
 * The simulation harness (FoundationDB's and TigerBeetle's way): the whole daemon in this process, built as
 * `run` builds it, against the simulator (REST and the AMQP broker on loopback, the real Service Bus SDK),
 * all on one simulated clock; a fault schedule drawn from a seed; the invariants checked after every
 * simulated minute. A failure names the seed and the simulated time, and the same seed replays it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { PostgresLocation } from '../../src/config.js';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { PatternLife, SessionPattern } from '../../src/simulator/patterns.js';
import { seededRandom } from '../../src/simulator/random.js';
import type { SimRequest } from '../../src/simulator/rest.js';
import { Simulation } from '../../src/simulator/simulation.js';
import { closeForReaders, type Db, openDatabase } from '../../src/store/database.js';
import { PgLease } from '../../src/store/postgres/lease.js';
import { migratePostgres } from '../../src/store/postgres/migrate.js';
import { openPool } from '../../src/store/postgres/pool.js';
import { Replicator } from '../../src/store/postgres/replicator.js';
import { WorkingCopy } from '../../src/store/postgres/working-copy.js';
import type { Daemon } from '../../src/sync/daemon.js';
import { buildDaemon, type Wired } from '../../src/sync/wiring.js';
import { REFUSED_MAX_RETRY_MS } from '../../src/zaptec/auth.js';
import { FreezableClock, SimClock } from './clock.js';
import { type FaultKind, faultSchedule, type ScheduledFault } from './faults.js';
import { Invariants } from './invariants.js';
import { LoadManager } from './load-manager.js';
import { controlDatabase, RefreshConsumer } from './refresh-consumer.js';
import { Relay } from './relay.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** After a start refused (a consumer holds the write lock while migrations want it), systemd's RestartSec. */
const RESTART_SEC_MS = 10_000;
/** With PostgreSQL, how long after the active one's death a standby is active (it tries the lease every second). */
const HANDOVER_MS = 1_000;
/** How long a daemon whose lease was cut may take to stop (CONTRACT §9: within 10 s). */
const NOTICE_MS = 10_000;
/** How long a frozen active daemon stays frozen (issue 28: SIGSTOP for 60 s, then SIGCONT). */
const FREEZE_MS = 60_000;
/** How long the server lets a frozen lease holder's session sit silent before it ends it (PgLease's default). */
const LEASE_IDLE_MS = 10_000;

/**
 * How the active daemon's term ends at a `daemon-restart` on PostgreSQL, in turn (CONTRACT §9's faults): killed;
 * its lease's connection cut by the server; frozen for a minute and resumed after a standby took over; the
 * server restarted under it (when the run has a server of its own to restart, else killed).
 */
export const HANDOVERS = ['kill', 'cut', 'freeze', 'server-restart'] as const;
export type Handover = (typeof HANDOVERS)[number];

export interface SimulateOptions {
  seed: number;
  days: number;
  installations?: number;
  chargersPerInstallation?: number;
  pattern?: SessionPattern;
  /** False: the fleet lives, nothing goes wrong. */
  faults?: boolean;
  historyDays?: number;
  /** False: the fleet does nothing of its own (no sessions, nothing published); a scenario drives it. */
  life?: boolean;
  /** A user group carrying the first installation (the others keep their own subscriptions). */
  userGroup?: boolean;
  /** Settings over the simulator's (`ZAPTEC_EVENTS: 'off'`, a budget). */
  env?: Record<string, string>;
  /** Told after each simulated day. */
  onDay?: (day: number, report: SimulationReport) => void;
  /**
   * A test's own doings on the clock, set up before the daemon starts: a storm of its own, a restart, or
   * something broken on purpose to see an invariant catch it.
   */
  scenario?: (world: World) => void;
  /** Keeps the whole request log for `world.requests()` (short runs: it grows with every call). */
  keepRequests?: boolean;
  /** A load manager acting through the daemon (ZAPTEC_COMMANDS=on), and CONTRACT §10's invariants. */
  loadManager?: boolean;
  /**
   * The daemon keeps the account in this PostgreSQL schema (CONTRACT §9): each term takes the lease, loads a
   * working copy and carries its changes there; a `daemon-restart` fault is then a handover (HANDOVERS, in
   * turn): the active one's term ends, nothing it had not carried is kept, and the next is active as soon as
   * the lease is free, from what PostgreSQL holds.
   */
  postgres?: PostgresLocation;
  /** The server `postgres` is on, when the run may restart it (a cluster of the run's own). */
  postgresServer?: { restart(): Promise<void> };
}

export interface SimulationReport {
  seed: number;
  days: number;
  installations: number;
  /** Chargers in the account at the end (chargers are added and removed on the way). */
  chargers: number;
  calls: number;
  stateReads: number;
  /** Calls per hour of each charger that was in the account at the time. */
  callsPerChargerHour: number;
  published: number;
  faults: Partial<Record<FaultKind, number>>;
  /** With PostgreSQL: the handovers by how the active one's term ended. */
  handovers: Partial<Record<Handover, number>>;
  /** Writes of daemons that had lost the lease, refused by the database (PostgreSQL's fence at work). */
  fenced: Partial<Record<Handover, number>>;
  checks: number;
  /** How many times each kind of invariant was looked at. */
  checked: Invariants['checked'];
  /** The load manager's commands by outcome (`open` while not done). */
  commands: Record<string, number>;
  /** Commands judged against the 5-second rule, and the slowest answer after the rules allowed it (ms). */
  commandsTimely: { checked: number; slowestMs: number };
  /** Refresh requests judged against the 5-second rule, and how many of them were answered deferred. */
  refreshesTimely: { checked: number; deferred: number };
  /** Values changed without a push: how many were found stored, and their delay (s) until then. */
  unpushed: { n: number; p50: number; p95: number; max: number };
  timers: number;
  stalls: Record<string, number>;
  warnings: number;
  peakHeapMb: number;
  /** The process's highest RSS at the hourly looks, and the event loop's longest delay (simulator included). */
  peakRssMb: number;
  loopDelayMaxMs: number;
  /** The most installations a user group carried at once (with `userGroup`). */
  carried: number;
  realMs: number;
}

export class SimulationFailure extends Error {}

/** What a run is made of, for the invariants and for sabotage. */
export interface World {
  sim: Simulation;
  clock: SimClock;
  dbPath: string;
  /** The daemon running now (none while it is down for a restart). */
  current(): { db: Db; daemon: Daemon; built: Wired } | undefined;
  /** Stops the daemon now and starts it again over the same database `downMs` later; resolves once stopped. */
  restart(downMs: number): Promise<void>;
  /** With PostgreSQL: a handover now, the active one's term ending as `how` says. */
  handover(how: Handover): void;
  /** The daemon's last warnings and errors (50 at most), each with its simulated time. */
  warnings: readonly string[];
  /** Every request the simulator was sent so far, when `keepRequests` (the invariants drop them otherwise). */
  requests(): SimRequest[];
}

const START = Date.parse('2026-03-02T00:00:00Z');

export async function simulate(o: SimulateOptions): Promise<SimulationReport> {
  const realStart = performance.now();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const installations = o.installations ?? 10;
  const perInstallation = o.chargersPerInstallation ?? 20;
  const historyDays = o.historyDays ?? 2;
  const end = START + o.days * DAY;
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'zaptec-simulation-'));
  const dbPath = join(dir, 'zaptec.db');
  // The replay command names every option `main.ts` takes that differs from its defaults.
  const replay = [
    `npm run test:simulate -- --seed ${o.seed} --days ${o.days}`,
    installations !== 10 ? `--installations ${installations}` : '',
    perInstallation !== 20 ? `--chargers-per-installation ${perInstallation}` : '',
    o.pattern && o.pattern !== 'realistic' ? `--sessions ${o.pattern}` : '',
    o.faults === false ? '--no-faults' : '',
    o.userGroup ? '--user-group' : '',
    o.postgres ? '--store postgresql' : '',
  ]
    .filter(Boolean)
    .join(' ');
  const failure = (what: string) =>
    new SimulationFailure(
      `${what}\n  seed ${o.seed}, simulated time ${new Date(clock.now()).toISOString()} (day ${Math.floor((clock.now() - START) / DAY) + 1} of ${o.days})\n  replay: ${replay}`,
    );
  let failed: SimulationFailure | undefined;
  const fail = (what: string) => {
    failed ??= failure(what);
  };
  const onRejection = (err: unknown) => fail(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`);
  const onException = (err: unknown) => fail(`uncaught exception: ${(err as Error)?.stack ?? String(err)}`);
  const connect = Socket.prototype.connect;

  /** A daemon: its own view of the clock (to freeze it), and the API's host name it was given. */
  type Running = {
    db: Db;
    daemon: Daemon;
    built: Wired;
    starting: Promise<void>;
    clock: FreezableClock;
    host: string;
  };
  /**
   * With PostgreSQL, a daemon's term: its lease (whose connection goes through a relay, to freeze it), working
   * copy and replicator; `lostAt`, once the server ended its lease session, while it may not have noticed.
   */
  type Term = {
    lease: PgLease;
    relay: Relay;
    copy: WorkingCopy;
    replicator: Replicator;
    lostAt?: number;
    /** How its handover ended it. */
    endedBy?: Handover;
  };
  let current: Running | undefined;
  let term: Term | undefined;
  const handovers: Partial<Record<Handover, number>> = {};
  /** A daemon resumed after a freeze, until it has stopped: the world waits for its I/O too. */
  let resumed: { c: Running; t: Term } | undefined;
  /** Writes of daemons that had lost the lease, refused by the database (the fence at work), by handover. */
  const fenced: Partial<Record<Handover, number>> = {};
  const pool = o.postgres ? openPool(o.postgres, { max: 4, idleInTransactionMs: 5_000 }) : undefined;
  if (pool && o.postgres) await migratePostgres(pool, o.postgres.schema);
  /** The SQLite file the daemon works on now: the database, or with PostgreSQL the term's working copy. */
  let workingPath = dbPath;
  let brokerDown = 0;
  /**
   * Real I/O the simulated world waits for: HTTP either side, an fsync, messages the broker should send or
   * that are on their way to the daemon or back as a settlement.
   */
  const busy = () => {
    if (term?.replicator.busy || resumed?.t.replicator.busy) return 'a PostgreSQL commit';
    if ((resumed?.c.built.client.http.inFlight ?? 0) > 0) return 'an HTTP request on its way';
    if (sim.rest.inFlight > 0) return 'an HTTP request the simulator is answering';
    if ((current?.built.client.http.inFlight ?? 0) > 0) return 'an HTTP request on its way';
    if (
      brokerDown === 0 &&
      current?.built.live?.streams.some(
        (s) => s.consuming && s.entity && !sim.broker.attached(s.entity.topic, s.entity.subscription),
      )
    )
      return 'a live-event connection being made';
    const broker = sim.broker.busy();
    if (broker.ready > 0) return 'messages the broker has to deliver';
    if (broker.starved > 0) return 'messages waiting for a receiver to grant credit';
    // Locked messages the daemon holds until their commit wait for the clock (a batch window, the lock).
    if (broker.locked > (current?.built.live?.counts().committing ?? 0)) return 'messages on their way';
    return process.getActiveResourcesInfo().includes('FSReqCallback') ? 'a file operation' : undefined;
  };
  const clock: SimClock = new SimClock({
    start: START,
    busy,
    // Requests and file operations always complete: waited for up to 2 s of real time on a loaded machine.
    stallMs: (what) =>
      what.includes('HTTP request') || what === 'a file operation' || what === 'a PostgreSQL commit'
        ? 2_000
        : 25,
    // Requests the invariants have consumed count as `calls`: the sum only grows.
    progress: () => invariants.calls + sim.rest.requests.length + sim.broker.activity + sim.rest.inFlight,
    onStall: (what) => {
      if (process.env.SIM_DEBUG)
        console.log(
          `stall ${new Date(clock.now()).toISOString()}: ${what}`,
          JSON.stringify(sim.broker.busy()),
          JSON.stringify(current?.built.live?.counts()),
        );
    },
  });
  const sim = new Simulation({
    fleet: { seed: o.seed, installations, chargersPerInstallation: perInstallation, deviceTypes: [4, 4, 1] },
    clock,
  });
  await sim.start();
  if (o.userGroup) sim.addUserGroup([...sim.fleet.installations.keys()].slice(0, 1));
  const lines: string[] = [];
  let warnings = 0;
  const log = createLogger({
    level: 'warn',
    destination: {
      write(line: string) {
        warnings++;
        lines.push(`${new Date(clock.now()).toISOString()} ${line.trim()}`);
        if (lines.length > 50) lines.shift();
      },
    },
  });
  const config = parseConfig(
    {
      ...sim.env(),
      ZAPTEC_DB: dbPath,
      ZAPTEC_HISTORY_DAYS: String(historyDays),
      ZAPTEC_SESSIONS_DAYS: '3',
      ...(o.loadManager ? { ZAPTEC_COMMANDS: 'on' } : {}),
      ...o.env,
    },
    { requireCredentials: true },
  );
  const world: World = {
    sim,
    clock,
    get dbPath() {
      return workingPath;
    },
    current: () => current,
    // Done by the driving loop (the scenario runs inside a timer, and only the driver moves time).
    restart: (downMs) =>
      new Promise<void>((resolve) => {
        events.push({
          at: clock.now(),
          run: () =>
            stopDaemon().then(() => {
              events.push({ at: clock.now() + downMs, run: startDaemon });
              resolve();
            }),
        });
        clock.interrupt();
      }),
    handover: (how) => {
      events.push({ at: clock.now(), run: () => handover(clock.now(), how) });
      clock.interrupt();
    },
    warnings: lines,
    requests: () => kept.concat(sim.rest.requests),
  };
  const kept: SimRequest[] = [];
  /** With PostgreSQL: when each request of the last half hour reached the simulator (the budget's check). */
  const recentCalls: number[] = [];
  let life: PatternLife | undefined;
  const manager = o.loadManager ? new LoadManager(sim, () => workingPath) : undefined;
  const refreshes = new RefreshConsumer({
    sim,
    dbPath: () => workingPath,
    at: (at, run) => events.push({ at, run }),
    fail: (what) => fail(what),
    disturbedUntil: () => invariants.disturbedUntil,
  });
  const managerRandom = seededRandom(o.seed + 29);
  const invariants = new Invariants({
    world,
    start: START,
    historyDays,
    fail,
    checked: (r) => {
      if (o.keepRequests) kept.push(r);
      if (pool) {
        recentCalls.push(r.at);
        oneCaller(r);
      }
    },
    silent: () => life?.silent,
  });
  // The first start reads every charger once, as fast as the budget allows (about 9 a second, the lists 25 a
  // minute): until then a value pushed before a charger's subscription existed may only be in the database
  // after its start read. Seconds for a small fleet; most of the first hour and a half at 30,000 chargers.
  const fleetSize = sim.fleet.activeChargers().length;
  invariants.disturbed(
    START + Math.ceil((fleetSize / 9 + ((installations + fleetSize / 100) * 60) / 25) * 1_200),
  );

  /**
   * CONTRACT §9: the budget's record lives in the database, so a daemon taking over knows every request the
   * old one sent within the widest window (the lists' 30 minutes): each one reached the simulator after its
   * record was carried.
   */
  const budgetCarried = (db: Db) => {
    const now = clock.now();
    const from = now - 30 * MIN;
    while (recentCalls.length > 0 && recentCalls[0]! <= from) recentCalls.shift();
    const sent = recentCalls.length + sim.rest.requests.filter((r) => r.at > from).length;
    const { n } = db.prepare('SELECT count(*) AS n FROM api_requests WHERE at_ms > ?').get(from - 5_000) as {
      n: number;
    };
    if (n < sent)
      fail(
        `a daemon took over knowing ${n} requests of the last 30 minutes; ${sent} were sent: the budget's record was not carried`,
      );
  };

  /**
   * The server ends the lease session of the term's daemon (pg_terminate_backend), as a cut connection or the
   * idle timeout of a frozen holder's session would. From then on PostgreSQL refuses its writes, noticed or not.
   */
  let cutting = false;
  const endLeaseSession = async (t: Term) => {
    cutting = true;
    await pool!.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid = hashtext($1)::oid`,
      [o.postgres!.schema],
    );
    t.lostAt = clock.now();
  };
  /** A cut connection: the daemon is told by its lease, and from then on every write and API call is refused. */
  const cutLease = async (t: Term) => {
    await endLeaseSession(t);
    const until = performance.now() + 5_000;
    while (t.lease.held && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (t.lease.held) fail('the daemon was not told within 5 s that its lease connection was cut');
  };
  /** A refresh request of one charger, straight into the running daemon's control file. */
  const askRefresh = () => {
    const control = controlDatabase(workingPath);
    const serial = sim.fleet.activeChargers()[0]?.deviceId;
    if (!control || !serial) return;
    try {
      control
        .prepare('INSERT INTO refresh_requests (charger, requested_at) VALUES (?, ?)')
        .run(serial, new Date(clock.now()).toISOString());
    } finally {
      control.close();
    }
  };
  /**
   * CONTRACT §9: a daemon that lost its lease calls nothing more: no request of it (its own host name for the
   * API) reached Zaptec after `at`.
   */
  const silentSince = (at: number, host: string) => {
    cutting = false;
    const after = sim.rest.requests.filter((r) => r.at > at && r.host === host).map((r) => r.at);
    for (const [h, t] of lastCallOf) if (h === host && t > at) after.push(t);
    if (after.length > 0)
      fail(
        `${after.length} API requests reached Zaptec after the active daemon lost its lease (the first at ${new Date(Math.min(...after)).toISOString()})`,
      );
  };
  /** Issue 28: never two daemons calling the API in the same second (each term has its own host name for it). */
  const lastCallOf = new Map<string, number>();
  const oneCaller = (r: SimRequest) => {
    const host = r.host ?? '';
    for (const [other, at] of lastCallOf)
      if (other !== host && Math.floor(at / 1_000) === Math.floor(r.at / 1_000))
        fail(
          `two daemons called the API in the second of ${new Date(r.at).toISOString()} (${other} and ${host})`,
        );
    lastCallOf.set(host, r.at);
  };
  /**
   * Fencing (CONTRACT §9): a write transaction proves the lease before it writes; a proof that passes after the
   * server ended the lease session would let a write of the old daemon land. Checked where it is decided.
   */
  const watchProofs = (t: Term) => {
    const prove = t.lease.proveHeld.bind(t.lease);
    t.lease.proveHeld = async (tx) => {
      const before = t.lostAt;
      try {
        await prove(tx);
      } catch (err) {
        if (before !== undefined && t.endedBy) fenced[t.endedBy] = (fenced[t.endedBy] ?? 0) + 1;
        throw err;
      }
      if (before !== undefined)
        fail(
          `a write of the daemon whose lease session ended at ${new Date(before).toISOString()} proved the lease after it`,
        );
    };
  };

  const apiUrls = [sim.rest.url, sim.rest.url.replace('127.0.0.1', 'localhost')];
  let terms = 0;
  const startDaemon = async () => {
    let db: Db;
    let durable: (() => Promise<void>) | undefined;
    let daemonConfig = config;
    if (pool && o.postgres) {
      const server = new URL(o.postgres.url);
      const relay = new Relay(server.hostname, Number(server.port || 5432));
      server.host = `127.0.0.1:${await relay.listen()}`;
      const lease = new PgLease({
        location: { ...o.postgres, url: server.toString() },
        onLost: (why) => {
          if (!cutting) fail(`the lease was lost: ${why}`);
        },
      });
      if (!(await lease.tryAcquire())) {
        await relay.close();
        return fail('another instance holds the lease');
      }
      await lease.drain();
      const copy = await WorkingCopy.load(pool, o.postgres.schema, clock.now());
      budgetCarried(copy.db);
      const replicator = new Replicator({ copy, pool, lease, schema: o.postgres.schema, log, historyDays });
      replicator.start();
      term = { lease, relay, copy, replicator };
      watchProofs(term);
      detachConsumers(); // from the last term's copy, which they may have opened again meanwhile
      workingPath = copy.path;
      db = copy.db;
      durable = () => replicator.flush();
      // Each term calls the API by another name, so that the simulator can tell whose requests it answers.
      const apiUrl = apiUrls[terms++ % apiUrls.length]!;
      daemonConfig = { ...config, dbPath: copy.path, controlDbPath: copy.controlPath, apiUrl };
    } else {
      try {
        db = openDatabase(dbPath, { create: true, daemon: true });
      } catch {
        // `run` exits 1 and systemd starts it again.
        events.push({ at: clock.now() + RESTART_SEC_MS, run: startDaemon });
        return;
      }
    }
    const own = new FreezableClock(clock);
    const made = buildDaemon({
      config: daemonConfig,
      db,
      log,
      clock: own,
      version: 'simulation',
      ...(durable ? { durable } : {}),
    });
    const starting = made.daemon.start();
    starting.catch((err) => fail(`the daemon did not start: ${(err as Error)?.stack ?? err}`));
    current = { db, ...made, starting, clock: own, host: new URL(daemonConfig.apiUrl).host };
  };
  /** Consumers let go of the daemon's file: it stops, or (PostgreSQL) the next term works on another copy. */
  const detachConsumers = () => {
    invariants.close(); // as consumers do when the daemon stops: it switches the file out of WAL
    refreshes.close();
    manager?.detach();
  };
  /** `killed` (PostgreSQL): the lease goes first, as when the process dies; nothing it has not carried lands. */
  const stopDaemon = async (killed = false) => {
    const c = current;
    if (!c) return;
    current = undefined;
    const t = term;
    term = undefined;
    if (t) detachConsumers();
    await endTerm(c, t, killed);
    if (!t) {
      invariants.close();
      closeForReaders(c.db);
    }
  };
  const endTerm = async (c: Running, t: Term | undefined, killed: boolean) => {
    if (killed && t) await t.lease.release();
    let done = false;
    const stopping = c.starting
      .catch(() => {})
      .then(() => c.daemon.stop())
      .finally(() => {
        done = true;
      });
    // Stopping closes real connections (the SDK's, undici's): real time passes too, a little per step.
    const limit = clock.now() + 5 * MIN;
    while (!done && clock.now() < limit) {
      await clock.runUntil(clock.now() + 1_000);
      if (!done) await new Promise((r) => setTimeout(r, 10));
    }
    if (!done) return fail('the daemon did not stop within 5 simulated minutes');
    await stopping;
    if (!t) return;
    await t.replicator.stop();
    if (!killed) await t.replicator.flush();
    await t.lease.release();
    await t.relay.close();
    t.copy.close();
  };

  /**
   * A handover (CONTRACT §9): the active daemon's term ends as `how` says, and a standby that tries the lease
   * every second is active as soon as it is free, from what PostgreSQL holds.
   */
  const handover = async (at: number, how: Handover) => {
    if (how === 'server-restart' && !o.postgresServer) how = 'kill';
    const c = current;
    const t = term;
    if (!c || !t) return;
    handovers[how] = (handovers[how] ?? 0) + 1;
    t.endedBy = how;
    const takeOver = () =>
      stopDaemon(true).then(() => {
        silentSince(at, c.host);
        events.push({ at: clock.now() + HANDOVER_MS, run: startDaemon });
      });
    switch (how) {
      case 'kill':
        invariants.disturbed(at + HANDOVER_MS + MIN);
        return takeOver();
      case 'cut':
      case 'server-restart':
        // The daemon goes on for the 10 s CONTRACT §9 gives it to stop, fenced all along; a consumer asks it for
        // a charger's state meanwhile, which it would read from the API if nothing fenced it. A restarted
        // server ends every session, the lease's with them.
        invariants.disturbed(at + NOTICE_MS + HANDOVER_MS + MIN);
        if (how === 'cut') await cutLease(t);
        else {
          cutting = true;
          await o.postgresServer!.restart();
          t.lostAt = clock.now();
        }
        askRefresh();
        events.push({ at: at + NOTICE_MS, run: takeOver });
        return;
      case 'freeze': {
        // SIGSTOP: the daemon's timers, its lease's connection and its Service Bus links all stand still. The
        // server ends the silent lease session after its idle timeout, a standby takes over; a minute on the
        // old one is resumed (SIGCONT), its timers all due at once, and stops within the 10 s it has.
        invariants.disturbed(at + FREEZE_MS + NOTICE_MS + MIN);
        cutting = true;
        c.clock.freeze();
        t.relay.freeze();
        const thawLinks = sim.broker.hold();
        current = undefined;
        term = undefined;
        // A consumer's refresh request waits in its file: read by the resumed daemon before it notices.
        askRefresh();
        events.push({ at: at + LEASE_IDLE_MS, run: () => endLeaseSession(t) });
        events.push({ at: at + LEASE_IDLE_MS + HANDOVER_MS, run: startDaemon });
        events.push({
          at: at + FREEZE_MS,
          run: () => {
            if (process.env.SIM_DEBUG)
              console.log(`resumed: ${c.clock.waiting} timers of the frozen daemon due`);
            resumed = { c, t };
            c.clock.thaw();
            t.relay.thaw();
            thawLinks();
          },
        });
        events.push({
          at: at + FREEZE_MS + NOTICE_MS,
          run: () =>
            endTerm(c, t, true).then(() => {
              resumed = undefined;
              silentSince(at, c.host);
              cutting = false;
              if (process.env.SIM_DEBUG)
                console.log(`the resumed daemon stopped; ${fenced.freeze ?? 0} writes fenced off`);
            }),
        });
        return;
      }
    }
  };

  // ---- the fault schedule: each fault's start, and its end where it lasts ----
  const counts: Partial<Record<FaultKind, number>> = {};
  let handoverTurn = 0;
  let lock: Database.Database | undefined;
  const password = sim.rest.users[0]!.password;
  const events: { at: number; run: () => unknown }[] = [];
  const apply = (f: ScheduledFault) => {
    counts[f.kind] = (counts[f.kind] ?? 0) + 1;
    if (process.env.SIM_DEBUG)
      console.log(
        `fault ${new Date(f.at).toISOString()}: ${f.kind} for ${Math.round(f.forMs / 1000)} s (n ${f.n})`,
      );
    const later = (run: () => unknown) => events.push({ at: f.at + f.forMs, run });
    const fleetIds = [...sim.fleet.installations.keys()];
    switch (f.kind) {
      case 'inventory-5xx':
        sim.rest.faults.push({
          path: /^\/api\/installation$/,
          status: [500, 502, 503][f.n % 3]!,
          times: 1 + (f.n % 6),
        });
        return;
      case 'token-revoked':
        return sim.rest.expireTokens();
      case 'password-changed':
        sim.rest.users[0]!.password = `changed-${f.n}`;
        // After a refusal the daemon tries one login an hour at most (CONTRACT §7), so the restored password
        // may go unused for that long; what needs a token (a reconnect's details) waits for it.
        invariants.disturbed(f.at + f.forMs + REFUSED_MAX_RETRY_MS);
        return later(() => {
          sim.rest.users[0]!.password = password;
        });
      case 'rate-limit-storm':
        sim.rest.faults.push({
          path: /^\/api\//,
          status: 429,
          times: 1 + (f.n % 4),
          headers: (at, path) => {
            manager?.held(at, at + f.waitMs + MIN);
            return invariants.serverWait(at, path, f.wait, f.waitMs);
          },
        });
        return;
      case 'broker-blip':
      case 'broker-outage':
        invariants.disturbed(f.at + f.forMs);
        if (brokerDown++ === 0) void sim.broker.stop();
        return later(() => {
          if (--brokerDown === 0) return sim.broker.start();
        });
      case 'sas-rotated': {
        invariants.disturbed(f.at);
        // With a user group, every other rotation is the group's key.
        const groups = [...sim.userGroups.keys()];
        return sim.rotateKey(
          groups.length > 0 && f.n % 2 === 1
            ? groups[f.n % groups.length]!
            : fleetIds[f.n % fleetIds.length]!,
        );
      }
      case 'charger-added': {
        const c = sim.fleet.addCharger(fleetIds[f.n % fleetIds.length]!, f.at);
        // Unknown to the daemon until it looks the serial up: its first words come on the bus.
        sim.publish(sim.fleet.set(c.id, 150, 'Wifi', f.at));
        return;
      }
      case 'charger-removed': {
        const active = sim.fleet.activeChargers();
        if (active.length > 1) sim.fleet.removeCharger(active[f.n % active.length]!.id);
        return;
      }
      case 'daemon-restart':
        // With PostgreSQL a handover, its kind in turn.
        if (pool) return handover(f.at, HANDOVERS[handoverTurn++ % HANDOVERS.length]!);
        invariants.disturbed(f.at + f.forMs);
        return stopDaemon().then(() => later(startDaemon));
      case 'write-lock-held':
        if (pool) return; // a SQLite file's lock: PostgreSQL's store has none for a consumer to hold
        invariants.disturbed(f.at + f.forMs);
        if (lock) return;
        lock = new Database(dbPath);
        lock.exec('BEGIN IMMEDIATE');
        return later(() => {
          lock?.exec('COMMIT');
          lock?.close();
          lock = undefined;
        });
    }
  };
  if (o.faults !== false)
    for (const f of faultSchedule(o.seed, START, o.days)) events.push({ at: f.at, run: () => apply(f) });

  let chargerMinutes = 0;
  let carried = 0;
  const report = (): SimulationReport => {
    // Chargers come and go (added, removed): the hours of the ones in the account at each minute.
    const chargerHours = chargerMinutes / 60;
    return {
      seed: o.seed,
      days: o.days,
      installations,
      chargers: sim.fleet.activeChargers().length,
      calls: invariants.calls,
      stateReads: invariants.stateReads,
      callsPerChargerHour: chargerHours > 0 ? invariants.calls / chargerHours : 0,
      published: sim.published,
      faults: counts,
      handovers: { ...handovers },
      fenced: { ...fenced },
      checks: invariants.checks,
      checked: { ...invariants.checked },
      unpushed: distribution(invariants.unpushedDelays),
      commands: manager?.outcomes() ?? {},
      commandsTimely: { ...(manager?.timely ?? { checked: 0, slowestMs: 0 }) },
      refreshesTimely: { ...refreshes.timely },
      timers: clock.fired,
      stalls: Object.fromEntries(clock.stalls),
      warnings,
      peakHeapMb: invariants.peakHeapMb,
      peakRssMb: invariants.peakRssMb,
      loopDelayMaxMs: Math.round(loop.max / 1e6),
      carried,
      realMs: Math.round(performance.now() - realStart),
    };
  };

  // Installed here, where the `finally` below undoes them.
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  // The SDK attaches its receivers through a session, which leaves Nagle on its socket: each settlement then
  // waits ~40 ms of real time for a delayed ACK, and that, not the work, would set the simulation's pace.
  Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
    this.setNoDelay(true);
    return (connect as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof connect;
  try {
    sim.onPublish = (ob) => invariants.published(ob);
    // Each charger lives on its own timeline; a tick publishes what happened since the last, at its times.
    if (o.life !== false) life = sim.live({ sessions: o.pattern ?? 'realistic' }, 5_000);
    o.scenario?.(world);
    await startDaemon();
    for (let minute = START + MIN; minute <= end && !failed; minute += MIN) {
      // Until the minute is reached: a scenario's interrupt brings the loop back here with an event due.
      while (clock.now() < minute) {
        for (;;) {
          events.sort((a, b) => a.at - b.at);
          const next = events[0];
          if (!next || next.at > minute) break;
          events.shift();
          await clock.runUntil(next.at);
          await next.run();
        }
        await clock.runUntil(minute);
      }
      invariants.minute(minute);
      refreshes.minute(minute);
      manager?.minute(minute, managerRandom);
      if (manager && (minute - START) % HOUR === 0) {
        const broken = manager.check(minute, invariants.disturbedUntil);
        if (broken) fail(broken);
      }
      chargerMinutes += sim.fleet.activeChargers().length;
      for (const g of current?.built.live?.userGroups() ?? [])
        carried = Math.max(carried, g.installations.length);
      if ((minute - START) % DAY === 0) o.onDay?.((minute - START) / DAY, report());
    }
    if (!failed) invariants.final(end);
    await stopDaemon();
  } finally {
    sim.onPublish = undefined;
    manager?.close();
    refreshes.close();
    lock?.close();
    if (current) await stopDaemon().catch(() => {});
    await sim.stop();
    await pool?.end();
    loop.disable();
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    Socket.prototype.connect = connect;
    rmSync(dir, { recursive: true, force: true });
  }
  if (failed) {
    failed.message += lines.length
      ? `\n  the daemon's last warnings:\n    ${lines.slice(-10).join('\n    ')}`
      : '';
    throw failed;
  }
  return report();
}

/** Seconds: how many, the median, the 95th percentile and the largest of some delays in ms. */
function distribution(ms: readonly number[]): { n: number; p50: number; p95: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
  return { n: sorted.length, p50: at(0.5) / 1000, p95: at(0.95) / 1000, max: (sorted.at(-1) ?? 0) / 1000 };
}
