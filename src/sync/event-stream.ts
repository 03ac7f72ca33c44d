/**
 * One supervised Service Bus subscription (CONTRACT §5, §7): an installation's own, or a user group's. Connection
 * details fetched before every client it creates; a new client after authentication or not-found errors and
 * after outages longer than 60 s; peekLock, each message completed only after its observation is committed;
 * malformed bodies dead-lettered with our own reason; reconnects with full-jitter backoff from 1 s to 5 min.
 * Liveness is judged by traffic and by the SDK's silence, never by `processError` alone (servicebus.md P2).
 */
import type { ProcessErrorArgs, ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import { fullJitter } from '../http/backoff.js';
import { HttpStatusError, RateLimitedError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { NULL_CHARGER_ID } from '../observation.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import type { UserGroupStore } from '../store/user-groups.js';
import { type Clock, quietAbortController } from '../time.js';
import type { CallOptions, ZaptecApi } from '../zaptec/api.js';
import { BodyError, decodeObservation } from '../zaptec/message.js';
import type { ConnectionDetails } from '../zaptec/schemas.js';
import { errorCodes, serviceBusClient } from '../zaptec/servicebus.js';
import { BatcherStoppedError, type EventBatcher } from './event-batcher.js';
import { Problems } from './problems.js';
import { Settler } from './settler.js';

/** An outage longer than this gets a new client with fresh connection details (CONTRACT §7). */
export const OUTAGE_NEW_CLIENT_MS = 60_000;
/** A connection with nothing pending is looked at again after this long at the latest. */
const IDLE_CHECK_MS = 60_000;
/** Without an error for this long after one, the SDK's own reconnect worked (it reports failures only). */
const QUIET_AFTER_ERROR_MS = 8_000;
/** A subscription that has said nothing bad this long after it started is taken as connected. */
const SETTLE_AFTER_SUBSCRIBE_MS = 2_500;
const BACKOFF = { baseMs: 1_000, capMs: 5 * 60_000 };
/** A connection this old was healthy: the backoff starts from 1 s again. */
const HEALTHY_AFTER_MS = 5 * 60_000;
/** Where the installation has no live events (not enabled, no access), try again this rarely. */
const NOT_ENABLED_RETRY_MS = 30 * 60_000;
/** A supervisor whose own code failed (not the connection: that has its backoff) starts over after this. */
const SUPERVISOR_RESTART_MS = 5_000;
/**
 * Parallel message handlers per connection: each waits for its batch's group commit, so this is what gives
 * throughput. A user group carries a fleet on one connection: 100 there gave 2,700 observations/s where ten
 * installations' connections gave 6,100 (BENCHMARKS.md, ingest).
 */
const MAX_CONCURRENT_CALLS = { installation: 100, 'user group': 1_000 } as const;

export interface LiveEventsDeps {
  api: Pick<ZaptecApi, 'connectionDetails' | 'userGroupConnectionDetails'>;
  batcher: EventBatcher;
  syncStatus: SyncStatusStore;
  clock: Clock;
  log: Logger;
  /** ZAPTEC_SERVICEBUS_ENDPOINT. */
  endpoint: URL | undefined;
  /** Live events of an installation became usable (false: poll it). */
  onConnected(installationId: string, connected: boolean): void;
  /** After a gap in live events: re-read that installation's chargers. */
  onGap(installationId: string): void;
  random?: () => number;
  /** Where a supervisor's own failure is reported (status, /healthz). */
  problems?: Problems;
  /** ZAPTEC_USER_GROUPS, and where what they carry is remembered. */
  userGroups?: { ids: readonly string[]; store: UserGroupStore };
  /** The installation a charger belongs to (the inventory), for a group's observations. */
  installationOf?: (chargerId: string) => string | undefined;
  /** A charger whose events are not kept: a lookup found it under an installation that is not followed. */
  notFollowed?: (chargerId: string) => boolean;
}

export type StreamState = 'connecting' | 'connected' | 'failed';

/** What a supervisor serves: an installation's own subscription, or a user group's. */
export interface StreamOwner {
  readonly kind: 'installation' | 'user group';
  readonly id: string;
  details(o: CallOptions): Promise<ConnectionDetails>;
  /** The connection's state now; `changed` when it differs from the last one told. */
  state(state: StreamState, detail: string | null, changed: boolean): void;
  /** The connection came back after a gap. */
  gap(): void;
  /**
   * The installation an observation is for (its last_event_at), learning what the owner can from it; `false`
   * for one this daemon does not keep (a charger of an installation ZAPTEC_INSTALLATIONS leaves out).
   */
  route(chargerId: string): string | undefined | false;
  /** messagingConnectionDetails answered a lasting 4xx: what the stream says in `failed`. */
  refused(status: number): string;
}

type StreamEnd = { kind: 'stopped' } | { kind: 'auth' | 'not-found' | 'outage'; reason: string };

/** One supervised subscription: an installation's own, or a user group's (its owner says which). */
export class EventStream {
  readonly owner: StreamOwner;
  /** The topic and subscription of the client being made or running (for the simulation harness). */
  entity: { topic: string; subscription: string } | undefined;
  readonly #d: LiveEventsDeps;
  readonly #problems: Problems;
  readonly #abort = quietAbortController();
  readonly #settler = new Settler();
  #loop: Promise<void> | undefined;
  #state: StreamState | undefined;
  #detail: string | null = null;
  /** Authentication or not-found endings in a row, reset by a working connection. */
  #authFailures = 0;
  /** Messages received (for tests and metrics). */
  received = 0;
  deadLettered = 0;
  /** Connections after the first (reconnects). */
  reconnects = 0;
  /** Messages received whose observation is not committed yet (in a batch, or waiting for the lock). */
  committing = 0;
  /** A client of this stream exists: connected, or connecting. */
  consuming = false;
  #everConnected = false;

  constructor(owner: StreamOwner, deps: LiveEventsDeps) {
    this.owner = owner;
    this.#d = deps;
    this.#problems = deps.problems ?? new Problems(deps.log, deps.clock);
  }

  start(): void {
    this.#loop = this.#supervise();
  }

  /** The supervisor owns its errors: reported, then it starts over; it never rejects. */
  async #supervise(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        await this.#run();
      } catch (err) {
        const sentence = `live-event supervision of ${this.owner.kind} ${this.owner.id} failed (${describeError(err)}); it starts over in ${SUPERVISOR_RESTART_MS / 1000} s`;
        this.#problems.fail('live-events', sentence, err);
        await this.#d.clock.sleep(SUPERVISOR_RESTART_MS, this.#abort.signal);
      }
    }
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The connection's state now (`connecting` before the first verdict), and why when it is not connected. */
  get state(): StreamState {
    return this.#state ?? 'connecting';
  }

  get detail(): string | null {
    return this.#detail;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  #set(state: StreamState, detail: string | null): void {
    const changed = state !== this.#state;
    this.#state = state;
    this.#detail = detail;
    if (state === 'connected') {
      this.#problems.ok('live-events', 'live-event supervision works again');
      this.#authFailures = 0;
      if (changed && this.#everConnected) this.reconnects++;
      this.#everConnected = true;
    }
    this.owner.state(state, detail, changed);
    if (!changed) return;
    const log = this.#d.log.child({
      [this.owner.kind === 'installation' ? 'installation' : 'userGroup']: this.owner.id,
    });
    if (state === 'failed') log.warn({ detail }, 'live events failed');
    else log.info({ detail }, `live events ${state}`);
  }

  async #run(): Promise<void> {
    const { clock } = this.#d;
    const signal = this.#abort.signal;
    let attempt = 0;
    this.#set('connecting', null);
    while (!signal.aborted) {
      let details: ConnectionDetails;
      try {
        details = await this.owner.details({ signal, deadline: clock.now() + 60_000 });
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof RateLimitedError) {
          await clock.sleep(err.retryAt - clock.now(), signal);
        } else if (err instanceof HttpStatusError && err.permanent) {
          this.#set('failed', this.owner.refused(err.status));
          await clock.sleep(NOT_ENABLED_RETRY_MS, signal);
        } else {
          this.#set(
            this.#state === 'failed' ? 'failed' : 'connecting',
            `cannot fetch connection details: ${describeError(err)}`,
          );
          await clock.sleep(fullJitter(attempt++, BACKOFF, this.#d.random), signal);
        }
        continue;
      }
      const startedAt = clock.now();
      this.entity = { topic: details.Topic, subscription: details.Subscription };
      this.consuming = true;
      const end = await this.#consume(details).finally(() => {
        this.consuming = false;
      });
      if (end.kind === 'stopped') break;
      if (clock.now() - startedAt >= HEALTHY_AFTER_MS) attempt = 0;
      if (end.kind === 'auth' || end.kind === 'not-found') {
        // The first time, the details may simply have changed (a rotated key): fetch them again at once.
        if (this.#authFailures++ === 0) continue;
        this.#set('failed', end.reason);
      } else {
        this.#set('connecting', end.reason);
      }
      await clock.sleep(fullJitter(attempt++, BACKOFF, this.#d.random), signal);
    }
  }

  /** One client: subscribe, and return when it must be replaced (or on stop). */
  async #consume(details: ConnectionDetails): Promise<StreamEnd> {
    const { clock } = this.#d;
    const client = serviceBusClient(details, this.#d.endpoint);
    const receiver = client.createReceiver(details.Topic, details.Subscription, {
      receiveMode: 'peekLock',
      maxAutoLockRenewalDurationInMs: 5 * 60_000,
    });
    const subscribedAt = clock.now();
    let lastError: { at: number; codes: string[] } | undefined;
    let lastMessageAt = 0;
    let downSince: number | undefined;
    /** Wakes the health check before its next deadline (a message while not connected, an error). */
    let lookAgain = () => {};
    let finish: (end: StreamEnd) => void = () => {};
    const ended = new Promise<StreamEnd>((resolve) => {
      finish = resolve;
    });
    const subscription = receiver.subscribe(
      {
        processMessage: async (m) => {
          lastMessageAt = clock.now();
          if (this.#state !== 'connected') lookAgain();
          await this.#handle(receiver, m);
        },
        processError: async (args: ProcessErrorArgs) => {
          const codes = errorCodes(args.error);
          if (
            args.errorSource === 'renewLock' ||
            args.errorSource === 'complete' ||
            codes.includes('MessageLockLost')
          ) {
            return; // P5: a settle that lost its lock; the message comes back
          }
          lastError = { at: clock.now(), codes };
          lookAgain();
          if (codes.includes('UnauthorizedAccess'))
            finish({
              kind: 'auth',
              reason: `the broker refused the SAS credentials (${describeError(args.error)})`,
            });
          else if (codes.includes('MessagingEntityNotFound'))
            finish({
              kind: 'not-found',
              reason: `the subscription does not exist (${describeError(args.error)})`,
            });
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: MAX_CONCURRENT_CALLS[this.owner.kind] },
    );
    /**
     * The verdict (connected, lost, an outage long enough for a new client) changes only at a deadline — the
     * settling time after subscribing, the quiet time after an error, the outage limit — or when a message or
     * an error arrives: it is looked at then, on the clock, and not polled (the SDK keeps real time for its
     * own I/O timeouts, inside the client).
     */
    const check = () => {
      const now = clock.now();
      const quiet = !lastError || now - lastError.at > QUIET_AFTER_ERROR_MS || lastMessageAt > lastError.at;
      const settled = now - subscribedAt >= SETTLE_AFTER_SUBSCRIBE_MS || lastMessageAt > 0;
      if (quiet && settled) {
        if (this.#state !== 'connected') {
          const wasDown = downSince !== undefined;
          downSince = undefined;
          this.#set('connected', null);
          if (wasDown) this.owner.gap();
        }
        return IDLE_CHECK_MS;
      }
      let next = IDLE_CHECK_MS;
      if (!settled) next = Math.min(next, subscribedAt + SETTLE_AFTER_SUBSCRIBE_MS - now);
      if (!quiet) {
        downSince ??= lastError!.at;
        if (this.#state === 'connected')
          this.#set('connecting', `connection lost (${lastError!.codes.join(', ')})`);
        if (now - downSince > OUTAGE_NEW_CLIENT_MS)
          finish({ kind: 'outage', reason: `no connection for ${Math.round((now - downSince) / 1000)} s` });
        next = Math.min(
          next,
          lastError!.at + QUIET_AFTER_ERROR_MS + 1 - now,
          downSince + OUTAGE_NEW_CLIENT_MS + 1 - now,
        );
      }
      return Math.max(1, next);
    };
    const health = quietAbortController();
    const checking = (async () => {
      while (!health.signal.aborted) {
        let waitMs = IDLE_CHECK_MS;
        try {
          waitMs = check();
        } catch (err) {
          finish({ kind: 'outage', reason: `the connection's health check failed: ${describeError(err)}` });
        }
        const early = new AbortController();
        lookAgain = () => early.abort();
        await clock.sleep(waitMs, AbortSignal.any([health.signal, early.signal]));
      }
    })();
    const onAbort = () => finish({ kind: 'stopped' });
    this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    const end = await ended;
    health.abort();
    await checking;
    this.#abort.signal.removeEventListener('abort', onAbort);
    const closing = (async () => {
      await subscription.close().catch(() => {});
      await receiver.close().catch(() => {});
      await client.close().catch(() => {});
    })();
    await Promise.race([closing, clock.sleep(3_000)]);
    return end;
  }

  /**
   * Commits one observation: the batcher keeps it while the database refuses writes (the SDK renews the
   * message's lock meanwhile). False when the daemon stops first: the message is left to come back.
   */
  async #commit(
    observation: ReturnType<typeof decodeObservation>,
    installationId: string | undefined,
  ): Promise<boolean> {
    try {
      await this.#d.batcher.submit(observation, installationId);
      return true;
    } catch (err) {
      if (err instanceof BatcherStoppedError) return false;
      throw err;
    }
  }

  async #handle(receiver: ServiceBusReceiver, m: ServiceBusReceivedMessage): Promise<void> {
    this.received++;
    let observation: ReturnType<typeof decodeObservation>;
    try {
      observation = decodeObservation(m.body);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      this.deadLettered++;
      await this.#settler.deadLetter(receiver, m, 'MalformedObservation', err.message).catch(() => {});
      return;
    }
    const installationId =
      observation.chargerId === NULL_CHARGER_ID ? false : this.owner.route(observation.chargerId);
    if (installationId !== false) {
      this.committing++;
      const committed = await this.#commit(observation, installationId).finally(() => this.committing--);
      if (!committed) return;
    }
    await this.#settler.complete(receiver, m).catch(() => {}); // a lost lock: it comes back, replays are harmless
  }
}

/**
 * An installation's own subscription; `carried` says when a user group carries it now (its own stream is on
 * its way out, and says nothing more).
 */
export function installationOwner(
  id: string,
  deps: Pick<LiveEventsDeps, 'api' | 'syncStatus' | 'onConnected' | 'onGap'>,
  carried: () => boolean = () => false,
): StreamOwner {
  return {
    kind: 'installation',
    id,
    details: (o) => deps.api.connectionDetails(id, o),
    state: (state, detail, changed) => {
      if (carried()) return;
      deps.syncStatus.setEvents(id, state, detail);
      if (changed) deps.onConnected(id, state === 'connected');
    },
    gap: () => {
      if (!carried()) deps.onGap(id);
    },
    route: () => id,
    refused: (status) =>
      `live events are not available for this installation (messagingConnectionDetails answered ${status}); enable "Message subscription" in the portal`,
  };
}
