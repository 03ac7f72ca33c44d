/**
 * `run`: the composition root. Configuration → database → API client → coordinator, wired here and
 * nowhere else. SIGTERM/SIGINT at any moment exit 0 within 10 s; SIGHUP asks for an inventory refresh.
 */
import {
  type Config,
  ConfigError,
  environment,
  packageVersion,
  parseConfig,
  unknownVariables,
} from '../config.js';
import { createLogger, describeError, type Logger, registerSecret, stdoutIsJournal } from '../log.js';
import { detachControl } from '../store/control.js';
import { readDaemonRow } from '../store/daemon-row.js';
import { closeForReaders, type Db, isSetupFault, markRealAccount, openDatabase } from '../store/database.js';
import { DatabaseOwned, OwnerLock } from '../store/owner.js';
import { type Daemon, HEARTBEAT_INTERVAL_MS } from '../sync/daemon.js';
import { Notifier } from '../sync/notify.js';
import { buildDaemon } from '../sync/wiring.js';
import { systemClock } from '../time.js';
import { parseCommandArgs } from './args.js';
import { EXIT_CONFIG, EXIT_FAILED, EXIT_OWNED } from './exit-codes.js';
import { runOnPostgres } from './run-postgres.js';

/** A stop that takes longer than this is cut short: CONTRACT promises exit within 10 s. */
const STOP_DEADLINE_MS = 8_000;
/** However short WatchdogSec is, the heartbeat is not tried more often than this. */
const WATCHDOG_MIN_PING_MS = 250;

export async function runCommand(args: string[], envFile: string | undefined): Promise<number> {
  parseCommandArgs(args, {}, 0);
  const env = environment(envFile);
  const config = parseConfig(env, { requireCredentials: true });
  registerSecret(config.password);
  const log = createLogger({ level: config.logLevel, journal: stdoutIsJournal(config.journalStream) });
  for (const { name, closest } of unknownVariables(env))
    log.warn({ variable: name, closest }, `unknown setting ${name} is ignored: did you mean ${closest}?`);
  return runDaemon(config, log);
}

async function runDaemon(config: Config, log: Logger): Promise<number> {
  const notifier = new Notifier(config.notifySocket, log);
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  let hupHandler: () => void = () => {};
  const onStop = (signal: string) => {
    log.info({ signal }, 'stopping');
    void notifier.stopping();
    stopRequested?.();
  };
  process.removeAllListeners('SIGTERM').removeAllListeners('SIGINT');
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  const early = (globalThis as { zaptecEarlyStop?: string }).zaptecEarlyStop;
  if (early) onStop(early);
  process.on('SIGHUP', () => hupHandler());
  lastResort(log);
  if (config.postgres)
    return runOnPostgres({
      config,
      location: config.postgres,
      log,
      notifier,
      stopped,
      serve: (o) => serve({ ...o, setHup: (h) => (hupHandler = h) }),
      cannotStart: (err) => cannotStart(err, log),
    });

  const owner = await ownDatabase(config.dbPath, stopped, log);
  if (owner === 'stopped') return 0;
  if (typeof owner === 'number') return owner;
  let db: Db;
  try {
    db = openDatabase(config.dbPath, { create: true, daemon: true });
    if (!onThisMachine(config.apiUrl)) markRealAccount(db);
  } catch (err) {
    owner.release();
    return cannotStart(err, log);
  }
  try {
    await serve({ config, db, log, notifier, until: stopped, setHup: (h) => (hupHandler = h) });
  } catch (err) {
    detachControl(db);
    closeForReaders(db);
    owner.release();
    return cannotStart(err, log);
  }
  detachControl(db);
  closeForReaders(db);
  owner.release();
  log.info('stopped');
  return 0;
}

export interface ServeOptions {
  config: Config;
  db: Db;
  log: Logger;
  notifier: Notifier;
  /** The daemon stops when this resolves (a signal; on PostgreSQL also the lease lost). */
  until: Promise<unknown>;
  /** Where SIGHUP goes while the daemon runs. */
  setHup: (handler: () => void) => void;
  /** PostgreSQL: the working copy's changes committed there (wiring's `durable`). */
  durable?: () => Promise<void>;
  /** PostgreSQL: its schema's version, for the `daemon` row. */
  schemaVersion?: number;
}

/**
 * The daemon on an open store, from its start until `until` and its stop (within STOP_DEADLINE_MS). A start
 * that failed throws, after what had started is stopped.
 */
export async function serve(o: ServeOptions): Promise<void> {
  const { config, log, notifier } = o;
  let daemon: Daemon | undefined;
  try {
    const watchdogMs = config.watchdogUsec === undefined ? undefined : config.watchdogUsec / 1000;
    // The watchdog is pinged on each heartbeat attempt, written or not: the event loop and the coordinator
    // run. A database that cannot be written is a problem for `status`, not a reason to be killed.
    const made = buildDaemon({
      config,
      db: o.db,
      log,
      clock: systemClock,
      version: packageVersion(),
      ...(o.durable ? { durable: o.durable } : {}),
      ...(o.schemaVersion === undefined ? {} : { schemaVersion: o.schemaVersion }),
      heartbeatMs: Math.max(
        WATCHDOG_MIN_PING_MS,
        Math.min(HEARTBEAT_INTERVAL_MS, (watchdogMs ?? Infinity) / 3),
      ),
      onHeartbeat: (built) => {
        if (watchdogMs !== undefined) void notifier.watchdog();
        void notifier.status(built.statusLine());
      },
    });
    daemon = made.daemon;
    const built = made.built;
    o.setHup(() => {
      log.info('SIGHUP: inventory refresh requested (and one login at once if the password was refused)');
      built.loginNow();
      built.requestInventory();
    });
    const starting = daemon.start().then(() => notifier.ready(built.statusLine()));
    await Promise.race([starting, o.until]);
    await Promise.race([o.until, starting.then(() => o.until)]);
  } finally {
    o.setHup(() => {});
    await stopWithin(daemon, log);
  }
}

/**
 * Takes the database's owner lock before anything else (CONTRACT §7 "One daemon per database"): no API call,
 * connection or write happens before it. Another live owner: one line naming its pid, and EXIT_OWNED.
 */
async function ownDatabase(
  dbPath: string,
  stopped: Promise<void>,
  log: Logger,
): Promise<OwnerLock | number | 'stopped'> {
  const stop = new AbortController();
  void stopped.then(() => stop.abort());
  try {
    const lock = await OwnerLock.acquire(dbPath, (ms) => systemClock.sleep(ms, stop.signal), {
      signal: stop.signal,
    });
    return lock ?? 'stopped';
  } catch (err) {
    if (err instanceof DatabaseOwned) {
      const pid = ownerPid(dbPath);
      process.stderr.write(
        `zaptec-sync run: ${dbPath} is owned by a running zaptec-sync (pid ${pid ?? 'unknown'}); not starting a second daemon on it\n`,
      );
      return EXIT_OWNED;
    }
    return cannotStart(err, log);
  }
}

/** An API on a loopback address is a simulator (demo, tests), never a real account. */
function onThisMachine(url: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(new URL(url).hostname);
}

/**
 * A start that failed: a fault a person must fix (a setting, the metrics port, the database's permissions or
 * a newer schema) is one line and exit 78, which systemd does not restart; anything else is logged, exit 1.
 */
function cannotStart(err: unknown, log: Logger): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`zaptec-sync run: configuration: ${err.message}\n`);
    return EXIT_CONFIG;
  }
  if (isSetupFault(err)) {
    process.stderr.write(`zaptec-sync run: ${describeError(err)}\n`);
    return EXIT_CONFIG;
  }
  log.fatal({ err: describeError(err) }, 'zaptec-sync failed');
  return EXIT_FAILED;
}

/** The owner's pid as its `daemon` row says (it writes the row as soon as it has the lock). */
function ownerPid(dbPath: string): number | undefined {
  try {
    const db = openDatabase(dbPath, { readonly: true });
    try {
      return readDaemonRow(db)?.pid ?? undefined;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

async function stopWithin(daemon: Daemon | undefined, log: Logger): Promise<void> {
  if (!daemon) return;
  let timer: NodeJS.Timeout | undefined;
  // Real time on purpose: systemd's stop timeout is wall-clock time, whatever clock the daemon was given.
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      log.warn('stop took too long; abandoning the work in flight');
      resolve();
    }, STOP_DEADLINE_MS);
  });
  await Promise.race([daemon.stop(), deadline]);
  clearTimeout(timer);
}

/**
 * No known path reaches these: every background loop owns its errors. Should one slip through anyway, the
 * process says what it was and exits 1, and systemd restarts it (a half-broken daemon is worse).
 */
function lastResort(log: Logger): void {
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ err: describeError(err), stack: err instanceof Error ? err.stack : undefined }, kind);
    process.exit(1);
  };
  process.on('unhandledRejection', fatal('unhandled rejection: a bug, please report it; exiting'));
  process.on('uncaughtException', fatal('uncaught exception: a bug, please report it; exiting'));
}
