/**
 * The simulated month's reader who asks for refreshes (CONTRACT §3, §7): every 45 simulated minutes a
 * `refresh_requests` row in the control database — a charger by serial, a serial no account has, now and then
 * the whole inventory — and CONTRACT §7's promise checked 5 s after each on the simulated clock: the row has an
 * `outcome` (`deferred` included, which leaves `handled_at` empty while the request stays open).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Simulation } from '../../src/simulator/simulation.js';
import { isoMs } from '../../src/time.js';

const EVERY_MINUTES = 45;
/** CONTRACT §3: the daemon handles a refresh request within 5 s when the budget allows. */
const ANSWERED_WITHIN_MS = 5_000;

/** The control database beside the daemon's, once the daemon has made it; undefined until then. */
export function controlDatabase(dbPath: string): Database.Database | undefined {
  try {
    const db = new Database(join(dbPath, '..', 'control.db'), { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return db;
  } catch {
    return undefined;
  }
}

export interface RefreshConsumerDeps {
  sim: Simulation;
  /** The daemon's database now (with PostgreSQL, each term's working copy). */
  dbPath: () => string;
  /** Runs `run` at `at` on the simulation's clock. */
  at(at: number, run: () => void): void;
  fail(what: string): void;
  /** The end of the last disturbance that could hold the daemon up (it down, its database locked, …). */
  disturbedUntil(): number;
}

export class RefreshConsumer {
  readonly #d: RefreshConsumerDeps;
  #db: Database.Database | undefined;
  #n = 0;
  /** Requests judged against the 5-second rule, and how many of them were deferred (whole-inventory ones). */
  readonly timely = { checked: 0, deferred: 0 };

  constructor(deps: RefreshConsumerDeps) {
    this.#d = deps;
  }

  /** After each simulated minute: now and then a request, looked at 5 s later. */
  minute(now: number): void {
    this.#db ??= controlDatabase(this.#d.dbPath());
    if (!this.#db || ++this.#n % EVERY_MINUTES !== 0) return;
    const round = this.#n / EVERY_MINUTES;
    const chargers = this.#d.sim.fleet.activeChargers();
    const charger =
      round % 8 === 0
        ? null
        : round % 4 === 0
          ? 'ZAP999999'
          : (chargers[round % chargers.length]?.deviceId ?? null);
    const id = Number(
      this.#db
        .prepare('INSERT INTO refresh_requests (charger, requested_at) VALUES (?, ?)')
        .run(charger, isoMs(now)).lastInsertRowid,
    );
    this.#d.at(now + ANSWERED_WITHIN_MS, () => this.#check(id, now, charger));
  }

  /** 5 s after it was asked: an outcome (any, `deferred` included), unless a disturbance held it up. */
  #check(id: number, asked: number, charger: string | null): void {
    this.#db ??= controlDatabase(this.#d.dbPath());
    const row = this.#db
      ?.prepare<[number], { handled_at: string | null; outcome: string | null }>(
        'SELECT handled_at, outcome FROM refresh_requests WHERE id = ?',
      )
      .get(id);
    if (asked <= this.#d.disturbedUntil()) return;
    this.timely.checked++;
    if (row?.outcome) {
      if (row.outcome === 'deferred') this.timely.deferred++;
      return;
    }
    this.#d.fail(
      `refresh request ${id} (${charger ?? 'the inventory'}), asked at ${isoMs(asked)}, was not answered within 5 s`,
    );
  }

  /** Lets go of the control database (the daemon's working copy is replaced at a handover: opened again). */
  close(): void {
    this.#db?.close();
    this.#db = undefined;
  }
}
