/**
 * What must hold all the way through a simulated run, checked after every simulated minute from the
 * simulator's own request log and the database as a consumer reads it. Each check fails loudly, with what it
 * saw; none of them asks the daemon what it thinks it did.
 */
import Database from 'better-sqlite3';
import type { SimObservation } from '../../src/simulator/fleet.js';
import type { SilentChange } from '../../src/simulator/patterns.js';
import type { SimRequest } from '../../src/simulator/rest.js';
import type { WaitConvention } from './faults.js';
import type { World } from './world.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** CONTRACT §7: a charger's state is never read twice within 15 s. */
const STATE_SPACING_MS = 15_000;
/** Inventory passes at most hourly; the requests of one pass (its pages) come closer than this. */
const PASS_SPACING_MS = 60 * MIN;
const ONE_PASS_MS = 10 * MIN;
/**
 * A pushed observation is stored within this long of its push, or of the end of the last disturbance that
 * could hold it up (a broker outage, the daemon down, a consumer holding the write lock, a rotated key).
 */
const STORED_WITHIN_MS = 30 * MIN;
/** History older than ZAPTEC_HISTORY_DAYS is gone within the pruner's hour, with a margin for a restart. */
const PRUNE_SLACK_MS = 3 * HOUR;
const HEAP_LIMIT_MB = 1024;
/**
 * CONTRACT §2, §4: each charger's full state is re-read at least every ZAPTEC_RECONCILE_MAX_MINUTES (360) even
 * while events flow (every ZAPTEC_RECONCILE_MINUTES, 60, while its reads reveal what the events missed).
 * Checked with a cadence's slack (a slot may move by up to one cadence), from three hours after the charger
 * came and after the last disturbance that could stop reads (the password refused, the daemon down).
 */
const RECONCILED_WITHIN_MS = 7 * HOUR;
const RECONCILE_SETTLE_MS = 3 * HOUR;
/** CONTRACT §8: a completed session is stored within 5 s of its live 723, and within 25 h otherwise. */
const SESSION_PUSHED_WITHIN_MS = 5_000;
const SESSION_WITHIN_MS = 25 * HOUR;

const STATE_PATH = /^\/api\/chargers\/([0-9a-f-]{36})\/state$/i;
const LIST_PATH = /^\/api\/(chargers|installation)\/?$/;
/**
 * A server-named wait longer than twice the longest window of the request's groups is implausible and is
 * clamped (rate-limits.md §"Plausibility"): Zaptec's lists have a 30-minute window, everything else 1 minute.
 */
const plausibleWaitMs = (path: string) => (LIST_PATH.test(path) ? 2 * 30 * MIN : 2 * MIN);

interface ServerWait {
  /** Index of the 429 in the request log (counted from the run's start). */
  index: number;
  at: number;
  until: number;
  /** Requests that were already on their way when the 429 was answered. */
  onTheirWay: number;
  seen: number;
  convention: WaitConvention;
}

export interface InvariantDeps {
  world: World;
  start: number;
  historyDays: number;
  fail(what: string): void;
  /** Each request of the simulator's log once it has been checked (the log is dropped as it goes). */
  checked?: (r: SimRequest) => void;
  /** The fleet's values changed without a push, as its life makes them (appended as they come). */
  silent?: () => readonly SilentChange[] | undefined;
}

export class Invariants {
  readonly #d: InvariantDeps;
  #reader: Database.Database | undefined;
  #stored: Database.Statement<[string, number], { observed_at: string }> | undefined;
  /** Per (charger, state): the newest pushed observation not yet seen stored, oldest push first. */
  readonly #pushed = new Map<string, { chargerId: string; stateId: number; at: number }>();
  readonly #lastStateRead = new Map<string, number>();
  /** Each charger's state reads in the last hour (CONTRACT §4: never more than 6 a charger-hour). */
  readonly #readsInHour = new Map<string, number[]>();
  readonly #waits: ServerWait[] = [];
  /** The last requests checked, for a failure's message. */
  readonly #recent: SimRequest[] = [];
  #lastListAt = -Infinity;
  #lastListOk = true;
  #lastPassAt = -Infinity;
  #disturbedUntil = 0;
  /** The end of the last disturbance (the daemon down, credentials refused, …): what waits may wait for. */
  get disturbedUntil(): number {
    return this.#disturbedUntil;
  }
  /** When each charger was first seen in the account by the hourly check. */
  readonly #cameAt = new Map<string, number>();
  calls = 0;
  stateReads = 0;
  checks = 0;
  /** How many times each kind of invariant was looked at: a run must show each one did work. */
  readonly checked = { request: 0, stored: 0, reconciled: 0, history: 0, heap: 0, unpushed: 0, sessions: 0 };
  /** Sessions the fleet completed, not yet found in charging_sessions; with the time their 723 was pushed. */
  readonly #sessions = new Map<string, { chargerId: string; endedAt: number; pushedAt?: number }>();
  /** The first of the fleet's sessions not yet taken into #sessions. */
  #sessionsFrom = -1;
  /** 723s pushed on the bus, by session id, until their session is taken into #sessions. */
  readonly #pushedSessions = new Map<string, number>();
  /** For each value changed without a push and found stored: how long after the change it was stored (ms). */
  readonly unpushedDelays: number[] = [];
  /** The first of `silent` not yet found stored. */
  #silentFrom = 0;
  #silentPending: SilentChange[] = [];
  peakHeapMb = 0;
  /** The process's resident memory at its highest hourly look (the simulator's share included). */
  peakRssMb = 0;

  constructor(deps: InvariantDeps) {
    this.#d = deps;
  }

  published(o: SimObservation): void {
    if (o.stateId === 723 && o.value) {
      const id = (JSON.parse(o.value) as { SessionId?: string }).SessionId?.toLowerCase();
      if (id) this.#pushedSessions.set(id, Math.floor(o.at));
    }
    const key = `${o.chargerId}:${o.stateId}`;
    this.#pushed.delete(key); // to the end: the map stays in push order
    this.#pushed.set(key, { chargerId: o.chargerId, stateId: o.stateId, at: Math.floor(o.at) });
  }

  /** Something that may hold pushed observations up until `until`. */
  disturbed(until: number): void {
    this.#disturbedUntil = Math.max(this.#disturbedUntil, until);
  }

  /** A fault's 429: its headers name the wait in `convention`; requests before its end are counted. */
  serverWait(at: number, path: string, convention: WaitConvention, waitMs: number): Record<string, string> {
    const client = this.#d.world.current()?.built.client.http;
    this.#waits.push({
      index: this.calls + this.#d.world.sim.rest.requests.length,
      at,
      until: at + Math.min(waitMs, plausibleWaitMs(path)),
      onTheirWay: Math.max(0, (client?.inFlight ?? 1) - 1),
      seen: 0,
      convention,
    });
    const s = Math.ceil(waitMs / 1000);
    switch (convention) {
      case 'retry-after':
        return { 'retry-after': String(s) };
      case 'retry-after-date':
        return { 'retry-after': new Date(at + s * 1000).toUTCString() };
      case 'retry-after-ms':
        return { 'retry-after-ms': String(waitMs) };
      case 'x-ms-retry-after-ms':
        return { 'x-ms-retry-after-ms': String(waitMs) };
    }
  }

  #count(kind: keyof Invariants['checked']): void {
    this.checks++;
    this.checked[kind]++;
  }

  /** After each simulated minute: checks the log entries since the last (and drops them), then the rest. */
  minute(now: number): void {
    const log = this.#d.world.sim.rest.requests;
    // The entry being answered right now stays for the next minute.
    let n = log.length;
    while (n > 0 && log[n - 1]!.status === 0) n--;
    for (let i = 0; i < n; i++) this.#request(log[i]!);
    log.splice(0, n);
    // A wait that has ended can match no later request: dropped, or a year's storms slow every check.
    for (let i = this.#waits.length - 1; i >= 0; i--)
      if (this.#waits[i]!.until <= now - MIN) this.#waits.splice(i, 1);
    this.#storedCheck(now, now - STORED_WITHIN_MS);
    this.#sessionsCheck(now);
    if ((now - this.#d.start) % HOUR === 0) {
      this.#reconcileCheck(now);
      this.#unpushedCheck(now);
      this.#historyCheck(now);
      this.#heapCheck();
    }
  }

  /** At the end, after a quiet hour: everything pushed up to ten minutes ago is stored. */
  final(now: number): void {
    this.#disturbedUntil = 0;
    this.#storedCheck(now, now - 10 * MIN);
  }

  #request(r: SimRequest): void {
    const { fail } = this.#d;
    const index = this.calls++; // its place in the whole run's log
    this.#count('request');
    this.#recent.push(r);
    if (this.#recent.length > 12) this.#recent.shift();
    this.#d.checked?.(r);
    if (r.limit)
      fail(`the simulator's limit "${r.limit}" refused ${r.method} ${r.path}: a limit's window did not hold`);
    for (const w of this.#waits) {
      // A request that arrives at the very instant of the 429 was on its way: the simulated clock stands still
      // while real I/O is under way, and the daemon may start a request (woken by a live event) between the
      // server's answer and its own reading of it. A client that ignored the wait would be caught later on.
      if (index <= w.index || r.at >= w.until || r.at === w.at) continue;
      if (++w.seen > w.onTheirWay)
        fail(
          `${r.method} ${r.path} at ${iso(r.at)}, before the wait a 429 named at ${iso(w.at)} ended (${iso(w.until)}, ${w.convention}; ${w.onTheirWay} on their way then)\n  the requests before it:\n    ${this.#recent.map((x) => `${iso(x.at)} ${x.method} ${x.path} ${x.status}`).join('\n    ')}`,
        );
    }
    const state = STATE_PATH.exec(r.path);
    // A read is one the server answered with the state (a 401 for an expired token read nothing).
    if (state && r.status >= 200 && r.status < 300) {
      this.stateReads++;
      const id = state[1]!.toLowerCase();
      const last = this.#lastStateRead.get(id);
      if (last !== undefined && r.at - last < STATE_SPACING_MS)
        fail(
          `charger ${id}'s state read at ${iso(r.at)}, ${r.at - last} ms after the last (at least 15 s apart)`,
        );
      this.#lastStateRead.set(id, r.at);
      // CONTRACT §4: whatever a charger does, never more than 6 calls in a charger-hour at steady state (an
      // hour clear of disturbances, whose re-reads after a gap or a restart come on top).
      const hour = (this.#readsInHour.get(id) ?? []).filter((t) => t > r.at - HOUR);
      hour.push(r.at);
      this.#readsInHour.set(id, hour);
      if (hour.length > 6 && r.at - HOUR > Math.max(this.#disturbedUntil, this.#d.start + HOUR))
        fail(
          `charger ${id} was read ${hour.length} times in the hour to ${iso(r.at)} (at most 6 a charger-hour)`,
        );
    }
    if (r.method === 'GET' && r.path === '/api/installation') {
      // A list request after a refused one (429, 5xx) is that pass going on once its wait is over.
      if (r.at - this.#lastListAt > ONE_PASS_MS && this.#lastListOk) {
        if (r.at - this.#lastPassAt < PASS_SPACING_MS)
          fail(
            `an inventory pass began at ${iso(r.at)}, ${Math.round((r.at - this.#lastPassAt) / 1000)} s after the last (at most hourly)`,
          );
        this.#lastPassAt = r.at;
      }
      this.#lastListAt = r.at;
      this.#lastListOk = r.status >= 200 && r.status < 300;
    }
  }

  #storedCheck(now: number, pushedBefore: number): void {
    if (now - this.#disturbedUntil < STORED_WITHIN_MS) return;
    const fleet = this.#d.world.sim.fleet;
    for (const [key, p] of this.#pushed) {
      if (p.at > pushedBefore) break;
      this.#count('stored');
      if (!fleet.chargers.get(p.chargerId)?.active) {
        this.#pushed.delete(key);
        continue;
      }
      const row = this.#statement()?.get(p.chargerId, p.stateId);
      if (row && Date.parse(row.observed_at) >= p.at) this.#pushed.delete(key);
      else {
        this.#d.fail(
          `state ${p.stateId} of charger ${p.chargerId}, pushed at ${iso(p.at)}, is not stored (stored: ${row ? row.observed_at : 'nothing'})`,
        );
        return;
      }
    }
  }

  /**
   * CONTRACT §8: each session the fleet completed during the run is in `charging_sessions` within 5 s of its
   * 723 where that was pushed (first_seen_at, on the daemon's clock), and within 25 h where it was not (the
   * daily charge-history pass), counted from the end of the last disturbance that could hold it up.
   */
  #sessionsCheck(now: number): void {
    const fleet = this.#d.world.sim.fleet.sessions;
    // Sessions already there when the run began (past days) are the backfill's, not this check's.
    if (this.#sessionsFrom < 0) this.#sessionsFrom = fleet.length;
    for (; this.#sessionsFrom < fleet.length; this.#sessionsFrom++) {
      const s = fleet[this.#sessionsFrom]!;
      this.#sessions.set(s.id.toLowerCase(), { chargerId: s.chargerId, endedAt: s.endedAt });
    }
    const db = this.#db();
    if (!db || this.#sessions.size === 0) return;
    const row = db.prepare<[string], { first_seen_at: string }>(
      'SELECT first_seen_at FROM charging_sessions WHERE id = ?',
    );
    // CONTRACT §8 counts the 5 s from the commit of the 723 observation (a cold start's queue comes late).
    const committed = db
      .prepare<[string, string], string | null>(
        `SELECT min(received_at) FROM charger_state_history
         WHERE charger_id = ? AND state_id = 723 AND instr(lower(value), ?) > 0`,
      )
      .pluck();
    for (const [id, s] of this.#sessions) {
      const pushedAt = this.#pushedSessions.get(id);
      if (pushedAt !== undefined) {
        s.pushedAt = pushedAt;
        this.#pushedSessions.delete(id);
      }
      const stored = row.get(id);
      const late =
        (stored ? Date.parse(stored.first_seen_at) : now) >
        (s.pushedAt ?? Infinity) + SESSION_PUSHED_WITHIN_MS;
      const at = late ? committed.get(s.chargerId.toLowerCase(), id) : undefined;
      const due = at
        ? Date.parse(at) + SESSION_PUSHED_WITHIN_MS
        : s.pushedAt !== undefined && !late
          ? s.pushedAt + SESSION_PUSHED_WITHIN_MS
          : s.endedAt + SESSION_WITHIN_MS;
      if (stored) {
        this.#count('sessions');
        this.#sessions.delete(id);
        if (Date.parse(stored.first_seen_at) > due && (s.pushedAt ?? s.endedAt) > this.#disturbedUntil)
          return this.#d.fail(
            `session ${id} of charger ${s.chargerId} (723 ${s.pushedAt !== undefined ? `pushed at ${iso(s.pushedAt)}` : 'never pushed'}) was stored at ${stored.first_seen_at}, after ${iso(due)}`,
          );
        continue;
      }
      if (now <= Math.max(due, this.#disturbedUntil + SESSION_WITHIN_MS)) continue;
      if (!this.#d.world.sim.fleet.chargers.get(s.chargerId)?.active) {
        this.#sessions.delete(id);
        continue;
      }
      return this.#d.fail(
        `session ${id} of charger ${s.chargerId}, ended at ${iso(s.endedAt)} (723 ${s.pushedAt !== undefined ? `pushed at ${iso(s.pushedAt)}` : 'never pushed'}), is not in charging_sessions`,
      );
    }
  }

  #reconcileCheck(now: number): void {
    for (const c of this.#d.world.sim.fleet.activeChargers()) {
      const came = this.#cameAt.get(c.id) ?? now;
      this.#cameAt.set(c.id, came);
      if (now - Math.max(came, this.#disturbedUntil) < RECONCILE_SETTLE_MS) continue;
      this.#count('reconciled');
      const last = this.#lastStateRead.get(c.id) ?? -Infinity;
      if (now - last > RECONCILED_WITHIN_MS) {
        this.#d.fail(
          `charger ${c.id}'s state was last read ${Number.isFinite(last) ? `at ${iso(last)}` : 'never'}: not reconciled within ${RECONCILED_WITHIN_MS / HOUR} h`,
        );
        return;
      }
    }
  }

  /**
   * CONTRACT §2, §4: a value that changed without a push is in the database within the reconciliation's
   * ceiling (ZAPTEC_RECONCILE_MAX_MINUTES, with a cadence's slack), counted from the change or from the end
   * of the last disturbance that could stop reads. Each one found stored gives its delay (received_at − change).
   */
  #unpushedCheck(now: number): void {
    const silent = this.#d.silent?.();
    const db = this.#db();
    if (!silent || !db) return;
    while (this.#silentFrom < silent.length) this.#silentPending.push(silent[this.#silentFrom++]!);
    const row = db.prepare<[string, number], { observed_at: string; received_at: string }>(
      'SELECT observed_at, received_at FROM charger_state WHERE charger_id = ? AND state_id = ?',
    );
    const fleet = this.#d.world.sim.fleet;
    this.#silentPending = this.#silentPending.filter((c) => {
      if (!fleet.chargers.get(c.chargerId)?.active) return false;
      const stored = row.get(c.chargerId, c.stateId);
      const storedAt = stored ? Date.parse(stored.observed_at) : -Infinity;
      if (storedAt >= Math.floor(c.at)) {
        if (storedAt === Math.floor(c.at)) this.unpushedDelays.push(Date.parse(stored!.received_at) - c.at);
        return false;
      }
      if (now - Math.max(c.at, this.#disturbedUntil) <= RECONCILED_WITHIN_MS) return true;
      this.#count('unpushed');
      this.#d.fail(
        `state ${c.stateId} of charger ${c.chargerId}, changed without a push at ${iso(c.at)}, is not stored within ${RECONCILED_WITHIN_MS / HOUR} h (stored: ${stored ? stored.observed_at : 'nothing'})`,
      );
      return false;
    });
    this.#count('unpushed');
  }

  #historyCheck(now: number): void {
    const db = this.#db();
    if (!db) return;
    this.#count('history');
    const oldest = db.prepare('SELECT min(observed_at) AS at FROM charger_state_history').get() as {
      at: string | null;
    };
    const limit = now - this.#d.historyDays * DAY - PRUNE_SLACK_MS;
    if (oldest.at && Date.parse(oldest.at) < limit && now - this.#d.start > this.#d.historyDays * DAY)
      this.#d.fail(
        `history from ${oldest.at} is still there, older than ZAPTEC_HISTORY_DAYS=${this.#d.historyDays}`,
      );
  }

  #heapCheck(): void {
    this.#count('heap');
    const { heapUsed, rss } = process.memoryUsage();
    const mb = heapUsed / 2 ** 20;
    this.peakHeapMb = Math.max(this.peakHeapMb, Math.round(mb));
    this.peakRssMb = Math.max(this.peakRssMb, Math.round(rss / 2 ** 20));
    if (mb > HEAP_LIMIT_MB) this.#d.fail(`the heap holds ${Math.round(mb)} MB (limit ${HEAP_LIMIT_MB} MB)`);
  }

  #db(): Database.Database | undefined {
    if (this.#reader) return this.#reader;
    try {
      this.#reader = new Database(this.#d.world.dbPath, { readonly: true, fileMustExist: true });
    } catch {
      return undefined; // not created yet
    }
    return this.#reader;
  }

  #statement() {
    const db = this.#db();
    if (!db) return undefined;
    this.#stored ??= db.prepare(
      'SELECT observed_at FROM charger_state WHERE charger_id = ? AND state_id = ?',
    );
    return this.#stored;
  }

  close(): void {
    this.#reader?.close();
    this.#reader = undefined;
    this.#stored = undefined;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
