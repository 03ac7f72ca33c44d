/**
 * The daemon's parts, built for the coordinator (issue 27 §1): each is handed the coordinator's reaction for
 * what it reports, and none holds a closure over another part. `wiring.ts` calls `buildParts` from inside the
 * coordinator's constructor, then gives the parts their start and stop.
 */
import { CommandStore } from '../store/commands.js';
import { type DaemonRecord, readDaemonRow } from '../store/daemon-row.js';
import type { InventoryStore } from '../store/inventory.js';
import type { ObservationStore } from '../store/observations.js';
import { ReconcileSpacingStore } from '../store/reconcile-spacing.js';
import { RefreshRequestStore } from '../store/refresh-requests.js';
import type { SessionStore } from '../store/sessions.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import type { UserGroupStore } from '../store/user-groups.js';
import type { ZaptecClient } from '../zaptec/client.js';
import { ChargeHistorySync } from './charge-history.js';
import { CommandRunner } from './commands.js';
import type { CoordinatedParts, Coordinator } from './coordinator.js';
import { EventBatcher } from './event-batcher.js';
import { HistoryPruner } from './history-pruner.js';
import { InventorySync } from './inventory.js';
import { LiveEvents } from './live-events.js';
import { ChargerLookup } from './lookup.js';
import { Metrics } from './metrics.js';
import type { Problems } from './problems.js';
import type { Progress } from './progress.js';
import { RefreshRequests } from './refresh-requests.js';
import { StateReader } from './state-reader.js';
import type { WiringDeps } from './wiring.js';

/** What the parts are built from: the stores and the client, none of which reacts to anything. */
export interface Stores {
  client: ZaptecClient;
  inventoryStore: InventoryStore;
  sessions: SessionStore | undefined;
  observations: ObservationStore;
  syncStatus: SyncStatusStore;
  userGroups: UserGroupStore;
  daemon: DaemonRecord;
  problems: Problems;
  progress: Progress;
  durable: () => Promise<void>;
  /** The installations followed now (ZAPTEC_INSTALLATIONS, or every active one). */
  followed: () => string[];
}

/** Every part of the running daemon; the coordinator moves those of `CoordinatedParts`. */
export interface Parts extends CoordinatedParts {
  inventorySync: InventorySync;
  batcher: EventBatcher;
  live: LiveEvents | undefined;
  refresh: RefreshRequests;
  pruner: HistoryPruner;
  commands: CommandRunner;
}

/** The parts, each handed the coordinator's reaction for what it reports. */
export function buildParts(deps: WiringDeps, s: Stores, reactions: Coordinator): Parts {
  const { config, db, log, clock } = deps;
  const { client, inventoryStore, observations, syncStatus, problems, progress } = s;
  const onlyInstallations = config.installations;
  const inventorySync = new InventorySync({
    api: client.api,
    store: inventoryStore,
    observations,
    daemon: s.daemon,
    syncStatus,
    clock,
    log: log.child({ component: 'inventory' }),
    problems,
    cronExpression: config.inventoryCron,
    followed: onlyInstallations,
    onRefreshed: (ids) => reactions.inventoryRefreshed(ids),
    onChargersSeen: (chargers) => reactions.chargersSeen(chargers),
    onInstallationsKnown: (ids) => reactions.installationsKnown(ids),
  });
  const batcher = new EventBatcher({
    observations,
    syncStatus,
    clock,
    log: log.child({ component: 'events' }),
    onApplied: (r) => reactions.applied(r, 'event'),
    durable: s.durable,
    lag: (seconds) => reactions.eventCommitted(seconds),
  });
  const live = config.events
    ? new LiveEvents({
        api: client.api,
        batcher,
        syncStatus,
        clock,
        log: log.child({ component: 'events' }),
        endpoint: config.servicebusEndpoint,
        problems,
        onConnected: (id, connected) => reactions.eventsConnected(id, connected),
        onGap: (id) => reactions.eventsGap(id),
        ...(config.userGroups?.length
          ? {
              userGroups: { ids: config.userGroups, store: s.userGroups },
              installationOf: (id: string) => reactions.installationOf(id),
              notFollowed: (id: string) => reactions.notFollowed(id),
            }
          : {}),
      })
    : undefined;
  const stateReader = new StateReader({
    api: client.api,
    observations,
    inventory: inventoryStore,
    syncStatus,
    clock,
    log: log.child({ component: 'state' }),
    reconcileMs: config.reconcileMinutes * 60_000,
    reconcileMaxMs: config.reconcileMaxMinutes * 60_000,
    spacings: new ReconcileSpacingStore(db),
    requestsPerMinute: config.requestsPerMinute,
    problems,
    progress,
    onApplied: (r) => reactions.applied(r, 'poll'),
  });
  const lookup = new ChargerLookup({
    api: client.api,
    inventory: inventoryStore,
    inventorySync,
    observations,
    clock,
    log: log.child({ component: 'lookup' }),
    onFound: (id) => reactions.chargerFound(id),
    followed: onlyInstallations,
  });
  const refresh = new RefreshRequests({
    store: new RefreshRequestStore(db),
    lookup,
    inventorySync,
    clock,
    log: log.child({ component: 'refresh' }),
    problems,
  });
  const metrics = config.metrics
    ? new Metrics({
        eventStates: () => syncStatus.all(),
        oldestHeard: () => inventoryStore.oldestHeard(),
        heartbeatAt: () => readDaemonRow(db)?.heartbeat_at ?? null,
        admission: client.admission,
        clock,
        problems,
        events: () => ({
          applied: batcher.applied,
          ...(live?.counts() ?? { received: 0, deadLettered: 0, reconnects: 0 }),
        }),
        stateReads: () => stateReader.reads,
      })
    : undefined;
  client.admission.onSettle = (groups, outcome) => reactions.requestSettled(groups, outcome);
  const lastAlive = readDaemonRow(db)?.heartbeat_at;
  const chargeHistory = s.sessions
    ? new ChargeHistorySync({
        api: client.api,
        sessions: s.sessions,
        followed: s.followed,
        clock,
        log: log.child({ component: 'sessions' }),
        problems,
        days: config.sessions.days,
        lastAlive: lastAlive ? Date.parse(lastAlive) : undefined,
        busy: () => reactions.stateReadsOverdue(),
        progress,
      })
    : undefined;
  const commands = new CommandRunner({
    store: new CommandStore(db),
    api: client.api,
    inventory: inventoryStore,
    observations,
    readSoon: (id) => reactions.commandCarriedOut(id),
    enabled: config.commands,
    clock,
    log: log.child({ component: 'commands' }),
    problems,
    onOutcome: (action, outcome) => reactions.commandFinished(action, outcome),
  });
  return {
    observations,
    inventory: inventoryStore,
    syncStatus,
    stateReader,
    lookup,
    live,
    chargeHistory,
    problems,
    commands,
    metrics,
    inventorySync,
    batcher,
    refresh,
    pruner: new HistoryPruner(observations, clock, problems, log),
  };
}
