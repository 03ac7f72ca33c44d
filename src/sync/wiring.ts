/**
 * The composition root's helper: builds every component from the configuration and wires their
 * reactions (zigbee2mqtt's controller). Constructors only store dependencies; work starts in start().
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { attachControl } from '../store/control.js';
import { DaemonRecord } from '../store/daemon-row.js';
import { type Db, WalWatch } from '../store/database.js';
import { WalSync } from '../store/durability.js';
import { InventoryStore } from '../store/inventory.js';
import { ObservationStore } from '../store/observations.js';
import { SessionStore } from '../store/sessions.js';
import { SqliteBudgetLedger } from '../store/sqlite/budget-ledger.js';
import { SyncStatusStore } from '../store/sync-status.js';
import { UserGroupStore } from '../store/user-groups.js';
import type { Clock } from '../time.js';
import { createZaptecClient, type ZaptecClient } from '../zaptec/client.js';
import { Coordinator } from './coordinator.js';
import { CredentialRetry } from './credentials.js';
import { type Component, Daemon } from './daemon.js';
import type { LiveEvents } from './live-events.js';
import { buildParts, type Parts, type Stores } from './parts.js';
import { Problems } from './problems.js';
import { Progress } from './progress.js';
import type { StateReader } from './state-reader.js';

export interface WiringDeps {
  config: Config;
  db: Db;
  log: Logger;
  clock: Clock;
  version: string;
  /** Tests pass a scaled profile. */
  client?: ZaptecClient;
  /**
   * What a commit must reach before a message is completed or a request sent: SQLite's WAL on disk unless
   * given (PostgreSQL: the working copy's changes committed there).
   */
  durable?: () => Promise<void>;
  /** The schema version the `daemon` row names (PostgreSQL's, when the database is its working copy). */
  schemaVersion?: number;
}

export interface Wired {
  components: Component[];
  /** One line for `systemctl status`. */
  statusLine(): string;
  requestInventory(): void;
  /** SIGHUP after refused credentials: one login at once. */
  loginNow(): void;
  stateReader: StateReader;
  /** What the daemon finds wrong now: the heartbeat writes it, /healthz serves it. */
  problems: Problems;
  /** Writes that waited for the lock (sync_status), tried again with each heartbeat. */
  retryWrites(): void;
  client: ZaptecClient;
  live: LiveEvents | undefined;
  progress: Progress;
}

export interface DaemonOptions extends WiringDeps {
  /** How often the heartbeat is tried; HEARTBEAT_INTERVAL_MS unless the watchdog wants it sooner. */
  heartbeatMs?: number;
  /** First thing after each heartbeat attempt, written or not (`run`: the watchdog ping, the status line). */
  onHeartbeat?: (built: Wired) => void;
}

/** The whole daemon, not started: `run` starts it as a process, the simulation harness in-process. */
export function buildDaemon(o: DaemonOptions): { daemon: Daemon; built: Wired } {
  const built = buildComponents(o);
  const wal = new WalWatch(o.db, o.log);
  const daemon = new Daemon({
    record: new DaemonRecord(o.db, o.schemaVersion),
    clock: o.clock,
    log: o.log,
    version: o.version,
    components: built.components,
    problems: built.problems,
    progress: () => built.progress.summary(),
    ...(o.heartbeatMs === undefined ? {} : { heartbeatMs: o.heartbeatMs }),
    onHeartbeat: () => {
      o.onHeartbeat?.(built);
      built.retryWrites();
      wal.check();
    },
  });
  return { daemon, built };
}

function buildComponents(deps: WiringDeps): Wired {
  const { config, db, log, clock } = deps;
  // Where consumers ask (refresh_requests, commands): attached as `control` (CONTRACT §10).
  attachControl(db, config.controlDbPath);
  const walSync = deps.durable ? undefined : new WalSync(db);
  const durable = deps.durable ?? (() => walSync!.sync());
  const client =
    deps.client ??
    createZaptecClient({
      apiUrl: config.apiUrl,
      username: config.username ?? '',
      password: config.password ?? '',
      requestsPerMinute: config.requestsPerMinute,
      commands: config.commands,
      version: deps.version,
      ledger: new SqliteBudgetLedger(db),
      clock,
      log: log.child({ component: 'api' }),
      durable,
    });
  const inventoryStore = new InventoryStore(db);
  const sessions = config.sessions.enabled
    ? new SessionStore(db, {
        personalData: config.sessions.personalData,
        log: log.child({ component: 'sessions' }),
        now: () => clock.now(),
      })
    : undefined;
  const observations = new ObservationStore(db, {
    historyDays: config.historyDays,
    now: () => clock.now(),
    sessions,
  });
  const syncStatus = new SyncStatusStore(db);
  const userGroups = new UserGroupStore(db);
  const daemon = new DaemonRecord(db, deps.schemaVersion);
  const problems = new Problems(log, clock);
  const progress = new Progress(log, clock);
  const credentials = new CredentialRetry({
    tokens: client.tokens,
    clock,
    log: log.child({ component: 'credentials' }),
    problems,
  });

  const followed = (): string[] => config.installations ?? inventoryStore.activeInstallationIds();
  const stores: Stores = {
    client,
    inventoryStore,
    sessions,
    observations,
    syncStatus,
    userGroups,
    daemon,
    problems,
    progress,
    durable,
    followed,
  };
  let parts!: Parts;
  const coordinator = new Coordinator(config.events, (reactions) => {
    parts = buildParts(deps, stores, reactions);
    return parts;
  });
  const {
    inventorySync,
    batcher,
    live,
    stateReader,
    lookup,
    refresh,
    metrics,
    pruner,
    chargeHistory,
    commands,
  } = parts;
  const components: Component[] = [
    // First: a port that is taken stops the start (exit 78) before any API call.
    {
      name: 'metrics',
      start: async () => {
        if (metrics && config.metrics) await metrics.start(config.metrics.host, config.metrics.port, log);
      },
      stop: () => metrics?.stop(),
    },
    {
      name: 'api',
      start: () => {},
      stop: async () => {
        await client.close();
        walSync?.close();
      },
    },
    { name: 'credentials', start: () => credentials.start(), stop: () => credentials.stop() },
    {
      name: 'state',
      start: () => {
        coordinator.followInstallations(followed());
        stateReader.start();
      },
      stop: () => stateReader.stop(),
    },
    {
      name: 'inventory',
      start: () => {
        inventorySync.start();
        // Not awaited: readiness does not wait for the cloud. A failure is reported by the pass itself.
        inventorySync.startupPass().catch(() => {});
      },
      stop: async () => {
        lookup.stop();
        await inventorySync.stop();
      },
    },
    { name: 'refresh-requests', start: () => refresh.start(), stop: () => refresh.stop() },
    { name: 'commands', start: () => commands.start(), stop: () => commands.stop() },
    {
      name: 'live-events',
      start: () => {
        if (live) coordinator.followInstallations(followed());
      },
      stop: async () => {
        coordinator.stopping();
        await live?.stop();
        batcher.stop();
      },
    },
    { name: 'history', start: () => pruner.start(), stop: () => pruner.stop() },
    { name: 'sessions', start: () => chargeHistory?.start(), stop: () => chargeHistory?.stop() },
  ];
  const statusLine = (): string => {
    const rows = syncStatus.all();
    const connected = rows.filter((r) => r.events === 'connected').length;
    const used = client.admission.usage().find((u) => u.group === 'global' && u.window.kind === 'sliding');
    const chargers = inventoryStore.activeChargers().length;
    const events = config.events
      ? `live events ${connected}/${rows.length} connected`
      : 'live events off (polling)';
    const budget =
      used && used.window.kind === 'sliding' ? `API ${used.used}/${used.window.limit} per minute` : '';
    return `${rows.length} installations, ${chargers} chargers; ${events}; ${budget}`;
  };
  return {
    components,
    statusLine,
    requestInventory: () => refresh.sighup(),
    loginNow: () => credentials.loginNow(),
    problems,
    progress,
    retryWrites: () => {
      syncStatus.retry();
      userGroups.retry();
    },
    stateReader,
    client,
    live,
  };
}
