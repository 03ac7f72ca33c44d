/**
 * Admission: a request may go out only when every window of every group it belongs to has room, and
 * no group is blocked. Each admission is written to the budget's ledger before the request is sent, in the
 * same exclusive transaction that checked the windows, so the budget holds across restarts, crashes and
 * processes (doctor alongside run).
 */
import { type BudgetLedger, windowStart } from '../store/budget-ledger.js';
import { whenWritable } from '../store/writable.js';
import type { Clock } from '../time.js';
import { RateLimitedError } from './errors.js';
import type { GroupDef, VendorProfile, WindowDef } from './profile.js';

/** How far back a token bucket is rebuilt from the log (its state older than this is assumed worst). */
const BUCKET_LOOKBACK_MS = 10_000;

/** Failures in a row (5xx, timeouts, network errors) after which a group's breaker opens (client.ts). */
export const BREAKER_THRESHOLD = 5;
/** How long a breaker's probe holds its group at most, should its outcome never be told. */
const PROBE_HOLD_MS = 120_000;
/** How often a request waiting for a probe's outcome looks again. */
const PROBE_WAIT_MS = 1_000;

export interface Ticket {
  readonly ids: number[];
  readonly groups: string[];
  readonly at: number;
}

export interface AdmitOptions {
  /** Latest acceptable send time (epoch ms); later → RateLimitedError at once. */
  deadline?: number;
  signal?: AbortSignal;
  /** Written in the admission's own transaction (what a crash after the send must not forget). */
  record?: (at: number) => void;
  /**
   * Goes first: while a priority request waits for room, no other request of this process is admitted (a
   * command someone waits on goes before reconciliation, charge history and lookups).
   */
  priority?: boolean;
}

/** How often a request that yields to a waiting priority request looks again. */
const PRIORITY_YIELD_MS = 50;

/**
 * The share of each sliding window that only priority requests may use, where they are expected (commands on):
 * a command finds room at once while background work has spent the rest (20 a minute keeps 1; 600 keeps 30).
 */
export const PRIORITY_RESERVE = 0.05;

interface Blocking {
  at: number;
  group: string;
  source: 'local' | 'server';
}

export class Admission {
  readonly #ledger: BudgetLedger;
  readonly #clock: Clock;
  readonly #profile: VendorProfile;
  #admissions = 0;
  /** Priority requests waiting for room: the others yield to them. */
  #priorityWaiting = 0;
  /**
   * Writes that met a held lock after the request was sent (its outcome, a block): kept here, applied
   * first thing in the next admission's transaction. Blocks also count from memory until then, so a 429's
   * wait holds whether or not it could be written yet.
   */
  readonly #unwritten: (() => void)[] = [];
  readonly #memoryBlocks = new Map<string, { until: number; source: string }>();
  /**
   * Requests waiting for room in the same groups stand in line: only the first of each line tries, the others
   * wait for it. (All trying at every free slot, each in a transaction that reads the windows, made 300
   * connection-detail requests of a 30,000-charger start block the event loop for 100 ms and more.)
   */
  readonly #lines = new Map<string, Promise<void>>();
  /**
   * Half-open breakers (rate-limits.md §5.5): a group whose last requests all failed sends one probe, and the
   * others wait for its outcome. Group → the probe's record and how long it may hold the group.
   */
  readonly #probes = new Map<string, { id: number; until: number }>();
  /** Told of every settled request (metrics). */
  onSettle: ((groups: string[], outcome: string) => void) | undefined;

  /** Resolves once the admission's record is on disk: a request is sent only after (CONTRACT §7 Durability). */
  readonly #durable: (() => Promise<void>) | undefined;

  /** The share of each sliding window kept for priority requests (0: none). */
  readonly #reserve: number;

  constructor(
    ledger: BudgetLedger,
    clock: Clock,
    profile: VendorProfile,
    durable?: () => Promise<void>,
    options: { priorityReserve?: number } = {},
  ) {
    this.#ledger = ledger;
    this.#reserve = options.priorityReserve ?? 0;
    this.#durable = durable;
    this.#clock = clock;
    this.#profile = profile;
    ledger.describe(
      profile.groups.flatMap((g) =>
        g.windows.map((w) =>
          w.kind === 'sliding'
            ? { group: g.name, seconds: w.seconds, kind: 'sliding' as const, limit: w.limit }
            : { group: g.name, seconds: w.burst / w.ratePerSecond, kind: 'bucket' as const, limit: w.burst },
        ),
      ),
    );
  }

  get profile(): VendorProfile {
    return this.#profile;
  }

  /** The earliest time this window admits one more request (a priority one may use the reserve too). */
  #windowFree(group: string, w: WindowDef, now: number, priority: boolean): number {
    if (w.kind === 'sliding') {
      const windowMs = w.seconds * 1000;
      const from = now - windowMs - this.#profile.guardMs;
      const limit = priority ? w.limit : w.limit - Math.floor(w.limit * this.#reserve);
      const n = this.#ledger.used(group, from);
      if (n < limit) return now;
      const oldest = this.#ledger.nthAfter(group, from, n - limit)!;
      return oldest + windowMs + this.#profile.guardMs;
    }
    // GCRA: emission interval T, tolerance τ = (burst − 1)·T. The log rebuilds the theoretical arrival
    // time; state older than the lookback is assumed the worst it could have been, so it never admits more.
    const T = 1000 / w.ratePerSecond;
    const tau = (w.burst - 1) * T;
    const from = now - BUCKET_LOOKBACK_MS;
    let tat = from + tau + T;
    for (const at of this.#ledger.timesAfter(group, from)) tat = Math.max(tat, at) + T;
    return Math.max(now, tat - tau);
  }

  /** The earliest time all windows and blocks of these groups allow a request; `now` if at once. */
  #earliest(groups: GroupDef[], now: number, priority = false): Blocking {
    let worst: Blocking = { at: now, group: groups[0]?.name ?? '', source: 'local' };
    for (const g of groups) {
      const block = this.#blockOf(g.name);
      if (block && block.until > worst.at) {
        worst = {
          at: block.until,
          group: g.name,
          source: block.source.startsWith('server') ? 'server' : 'local',
        };
      }
      const probe = this.#probes.get(g.name);
      if (probe && probe.until > now && now + PROBE_WAIT_MS > worst.at)
        worst = { at: now + PROBE_WAIT_MS, group: g.name, source: 'local' };
      for (const w of g.windows) {
        const at = this.#windowFree(g.name, w, now, priority);
        if (at > worst.at) worst = { at, group: g.name, source: 'local' };
      }
    }
    return worst;
  }

  /** The group's pause: the stored one, or the one in memory that could not be written yet if it is later. */
  #blockOf(group: string): { until: number; source: string } | undefined {
    const stored = this.#ledger.pause(group);
    const memory = this.#memoryBlocks.get(group);
    return memory && memory.until > (stored?.until ?? 0) ? memory : stored;
  }

  /**
   * One atomic check-and-record; returns the ticket, or when to try again. Throws (the ledger's `busy`) while
   * another connection holds the write lock: nothing is recorded and nothing may be sent.
   */
  tryAdmit(
    groups: GroupDef[],
    method: string,
    path: string,
    record?: (at: number) => void,
    priority = false,
  ): Ticket | Blocking {
    const now = this.#clock.now();
    return this.#ledger.exclusive((): Ticket | Blocking => {
      this.#writeUnwritten();
      const blocking = this.#earliest(groups, now, priority);
      if (blocking.at > now) return blocking;
      const ids = groups.map((g) => this.#ledger.record(g.name, now, method, path));
      groups.forEach((g, i) => {
        if (this.failuresInARow(g.name, BREAKER_THRESHOLD) >= BREAKER_THRESHOLD)
          this.#probes.set(g.name, { id: ids[i]!, until: now + PROBE_HOLD_MS });
      });
      record?.(now);
      return { ids, groups: groups.map((g) => g.name), at: now };
    });
  }

  #writeUnwritten(): void {
    for (const write of this.#unwritten) write();
    this.#unwritten.length = 0;
  }

  /** A write after the send: now, or (lock held) first thing in the next admission. */
  #afterSend(write: () => void): void {
    try {
      write();
    } catch (err) {
      if (!this.#ledger.busy(err)) throw err;
      this.#unwritten.push(write);
    }
  }

  /** Waits for room in every window of every group, then records the request. */
  async admit(groups: GroupDef[], method: string, path: string, options: AdmitOptions = {}): Promise<Ticket> {
    if (!options.priority) return this.#admit(groups, method, path, options);
    this.#priorityWaiting++;
    try {
      return await this.#admit(groups, method, path, options);
    } finally {
      this.#priorityWaiting--;
    }
  }

  /**
   * Requests stand in their groups' line (priority requests in a line of their own) and try when first. One with
   * a deadline is told at once when the windows cannot make it, and leaves the line when its deadline comes.
   */
  async #admit(groups: GroupDef[], method: string, path: string, options: AdmitOptions): Promise<Ticket> {
    const { deadline } = options;
    if (deadline !== undefined) {
      const free = this.#earliest(groups, this.#clock.now(), options.priority);
      if (free.at > deadline) throw new RateLimitedError(free.group, free.at, free.source);
    }
    const line = `${groups.map((g) => g.name).join(' ')}${options.priority ? ' priority' : ''}`;
    const before = this.#lines.get(line);
    let leave = () => {};
    const mine = new Promise<void>((resolve) => {
      leave = resolve;
    });
    const last = before ? before.then(() => mine) : mine;
    this.#lines.set(line, last);
    let ticket: Ticket;
    try {
      if (before && !(await this.#turn(before, options))) {
        const free = this.#earliest(groups, this.#clock.now(), options.priority);
        throw new RateLimitedError(free.group, Math.max(free.at, this.#clock.now() + 1), free.source);
      }
      ticket = await this.#admitNow(groups, method, path, options);
    } finally {
      leave();
      if (this.#lines.get(line) === last) this.#lines.delete(line);
    }
    // Recorded: the next in line may try while this record is made durable (they share the group commit).
    await this.#durable?.();
    return ticket;
  }

  /** Waits for the ones ahead in the line: true at this request's turn, false when its deadline came first. */
  async #turn(before: Promise<void>, options: AdmitOptions): Promise<boolean> {
    if (options.deadline === undefined)
      return untilOrAborted(
        before.then(() => true),
        options.signal,
      );
    const late = new AbortController();
    try {
      const timeout = this.#clock
        .sleep(Math.max(0, options.deadline - this.#clock.now()), late.signal)
        .then(() => false);
      return await untilOrAborted(Promise.race([before.then(() => true), timeout]), options.signal);
    } finally {
      late.abort();
    }
  }

  async #admitNow(groups: GroupDef[], method: string, path: string, options: AdmitOptions): Promise<Ticket> {
    for (;;) {
      options.signal?.throwIfAborted();
      if (!options.priority && this.#priorityWaiting > 0) {
        const at = this.#clock.now() + PRIORITY_YIELD_MS;
        if (options.deadline !== undefined && at > options.deadline)
          throw new RateLimitedError('global', at, 'local');
        await this.#clock.sleep(PRIORITY_YIELD_MS, options.signal);
        continue;
      }
      // While a consumer holds the write lock nothing is sent: the admission waits until it can be written.
      let r: Ticket | Blocking;
      try {
        r = await whenWritable(
          (ms, signal) => this.#clock.sleep(ms, signal),
          () => this.tryAdmit(groups, method, path, options.record, options.priority),
          { signal: options.signal, maxWaitMs: Infinity, busy: (err) => this.#ledger.busy(err) },
        );
      } catch (err) {
        options.signal?.throwIfAborted(); // stopped while waiting for the lock: the stop's error, as before
        throw err;
      }
      if ('ids' in r) {
        if (++this.#admissions % 500 === 0) this.prune();
        return r;
      }
      if (options.deadline !== undefined && r.at > options.deadline) {
        throw new RateLimitedError(r.group, r.at, r.source);
      }
      await this.#clock.sleep(r.at - this.#clock.now(), options.signal);
    }
  }

  /** When a request to these groups could go out, without recording anything. */
  nextFree(groups: GroupDef[]): number {
    const now = this.#clock.now();
    return this.#earliest(groups, now).at;
  }

  settle(ticket: Ticket, status: number | null, outcome: string): void {
    this.#probed(ticket);
    this.#afterSend(() => this.#ledger.settle(ticket.ids, status, outcome));
    this.onSettle?.(ticket.groups, outcome);
  }

  /** Takes back a request that provably never reached the server (connection refused). */
  refund(ticket: Ticket): void {
    this.#probed(ticket);
    this.#afterSend(() => this.#ledger.forget(ticket.ids));
  }

  /** A probe's outcome is known: its group's other requests may try (a failure has paused it again). */
  #probed(ticket: Ticket): void {
    ticket.groups.forEach((g, i) => {
      if (this.#probes.get(g)?.id === ticket.ids[i]) this.#probes.delete(g);
    });
  }

  /** Persists a pause for a group; an earlier one never shortens a later one. */
  block(group: string, until: number, source: string, detail: string): void {
    const at = Math.ceil(until);
    const memory = this.#memoryBlocks.get(group);
    if (!memory || memory.until < at) this.#memoryBlocks.set(group, { until: at, source });
    this.#afterSend(() => this.#ledger.extendPause(group, at, source, detail));
  }

  /** The status of the request before the newest settled one in this group (for "429 twice in a row"). */
  previousStatus(group: string, beforeId: number): number | null | undefined {
    return this.#ledger.previousStatus(group, beforeId);
  }

  /** How many of the group's newest settled requests, up to `max`, failed in a row (5xx, timeout, network). */
  failuresInARow(group: string, max: number): number {
    const rows = this.#ledger.newestOutcomes(group, max);
    const failed = (r: { status: number | null; outcome: string }) =>
      (r.status ?? 0) >= 500 || r.outcome === 'timeout' || r.outcome === 'network_error';
    const n = rows.findIndex((r) => !failed(r));
    return n === -1 ? rows.length : n;
  }

  /**
   * When the group's longest sliding window frees: the oldest of the last `limit` requests leaves it.
   * Used after a second 429 in a row, when the server's `Retry-After: 1` says nothing about it.
   */
  windowFreesAt(group: GroupDef, now: number): number {
    const sliding = group.windows.filter((w) => w.kind === 'sliding');
    const longest = sliding.sort((a, b) => b.seconds - a.seconds)[0];
    if (!longest) return now;
    const from = now - longest.seconds * 1000;
    const n = this.#ledger.used(group.name, from);
    const oldest = this.#ledger.nthAfter(group.name, from, Math.max(0, n - longest.limit)) ?? now;
    return oldest + longest.seconds * 1000 + this.#profile.guardMs;
  }

  /** Used per window, for status and metrics. */
  usage(): { group: string; window: WindowDef; used: number; blockedUntil: number | undefined }[] {
    const now = this.#clock.now();
    return this.#profile.groups.flatMap((g) =>
      g.windows.map((w) => {
        const seconds = w.kind === 'sliding' ? w.seconds : w.burst / w.ratePerSecond;
        const until = this.#blockOf(g.name)?.until;
        return {
          group: g.name,
          window: w,
          used: this.#ledger.used(g.name, windowStart(now, seconds)),
          blockedUntil: until !== undefined && until > now ? until : undefined,
        };
      }),
    );
  }

  /** Forgets requests older than every window (and expired blocks). */
  prune(): void {
    const longest = Math.max(
      60_000,
      ...this.#profile.groups.flatMap((g) =>
        g.windows.map((w) => (w.kind === 'sliding' ? w.seconds * 1000 : BUCKET_LOOKBACK_MS)),
      ),
    );
    const now = this.#clock.now();
    this.#ledger.prune(now - longest - 60_000, now);
  }
}

/** Resolves with `p`, or rejects with the signal's reason as soon as it aborts. */
function untilOrAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then((value) => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    });
  });
}
