/**
 * The budget's ledger (CONTRACT §4, §7): every admitted request, each group's pause, the windows the vendor's
 * profile sets, and when each charger's state was last read. Kept where every process and every restart sees
 * it: admission decides, the ledger remembers. `store/sqlite/budget-ledger.ts` implements it.
 */

/** One window of a profile as status and the `api_budget` view show it (a bucket: its burst over its refill). */
export interface LedgerWindow {
  group: string;
  seconds: number;
  kind: 'sliding' | 'bucket';
  limit: number;
}

/** A group's pause: no request before `until` (epoch ms); `source` says who asked for it (server or local). */
export interface LedgerPause {
  until: number;
  source: string;
}

export interface BudgetLedger {
  /** Replaces the windows on record with the profile's. */
  describe(windows: readonly LedgerWindow[]): void;
  /**
   * Runs `fn` in one write transaction that no other process interleaves: a window's check and the request's
   * record are one step. Throws what `busy` recognises while another connection holds the write lock.
   */
  exclusive<T>(fn: () => T): T;
  /** Whether `err` says another connection holds the write lock: nothing was written, try again soon. */
  busy(err: unknown): boolean;
  /** Records one request of `group` admitted at `at` (epoch ms); its id. */
  record(group: string, at: number, method: string, path: string): number;
  /** How many of the group's requests came after `since` (epoch ms, exclusive): a window's use. */
  used(group: string, since: number): number;
  /** When the group's request number `offset` (0: the oldest) after `since` came; undefined if none. */
  nthAfter(group: string, since: number, offset: number): number | undefined;
  /** When each of the group's requests after `since` came, oldest first. */
  timesAfter(group: string, since: number): number[];
  pause(group: string): LedgerPause | undefined;
  /** Pauses the group until `until`, unless it is paused longer already (an earlier pause never shortens one). */
  extendPause(group: string, until: number, source: string, detail: string): void;
  /** What became of the requests: the HTTP status (null: none came) and the outcome's word. */
  settle(ids: readonly number[], status: number | null, outcome: string): void;
  /** Takes back requests that provably never reached the server. */
  forget(ids: readonly number[]): void;
  /** The status of the group's newest settled request before `beforeId`. */
  previousStatus(group: string, beforeId: number): number | null | undefined;
  /** The group's newest settled requests, newest first, at most `max`. */
  newestOutcomes(group: string, max: number): { status: number | null; outcome: string }[];
  /** Forgets requests admitted before `requestsBefore` and pauses that ended before `pausesBefore`. */
  prune(requestsBefore: number, pausesBefore: number): void;
  /** When the charger's state was last read (epoch ms; the 15-second rule counts from it). */
  lastStateRead(chargerId: string): number | undefined;
  /** Which of these chargers have a state read on record: one look for the thousands a start names. */
  chargersRead(chargerIds: readonly string[]): Set<string>;
  markStateRead(chargerId: string, at: number): void;
}

/** A window's use: its requests after this (a bucket's refill time has fractions of a millisecond). */
export function windowStart(now: number, seconds: number): number {
  return Math.floor(now - seconds * 1000);
}

/** The one query of a window's use, for the ledger and for `status` (`?` the group, `?` the window's start). */
export const WINDOW_USED_SQL = 'SELECT count(*) AS n FROM api_requests WHERE grp = ? AND at_ms > ?';
