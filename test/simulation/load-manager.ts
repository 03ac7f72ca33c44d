/**
 * The simulated month's load manager (issue 29 §4): a consumer that acts through the daemon, as an energy
 * manager does — every 5 simulated minutes it asks for each installation's available current, every 20 a
 * charger paused or resumed — and the invariants of CONTRACT §10 checked against the simulator's own log:
 * an installation's current never changed twice within 15 minutes, no command accepted twice, every command
 * answered within a minute of being asked (sent, finished, or waiting with its reason), and sent or finished
 * within 5 s of the moment the rules allowed it (its request; for a current, also 15 minutes after the last one
 * sent; for one superseded, the request that superseded it), on the daemon's own timestamps.
 */
import type Database from 'better-sqlite3';
import type { Simulation } from '../../src/simulator/simulation.js';
import { isoMs } from '../../src/time.js';
import { controlDatabase } from './refresh-consumer.js';

const MIN = 60_000;
/** Zaptec's rule the daemon keeps (CONTRACT §10). */
const CURRENT_SPACING_MS = 15 * MIN;
/** A command is answered (sent, done, or waiting with its reason) this soon after it was asked. */
const ANSWERED_WITHIN_MS = MIN;
/** CONTRACT §10: a row is sent or gets its final outcome within 5 s when the rules allow. */
const ALLOWED_WITHIN_MS = 5_000;

interface Answered {
  id: number;
  target: string;
  action: string;
  requested_at: string;
  sent_at: string | null;
  finished_at: string | null;
  outcome: string | null;
}

export class LoadManager {
  readonly #sim: Simulation;
  readonly #dbPath: () => string;
  #db: Database.Database | undefined;
  #n = 0;
  asked = 0;
  /** Rows up to this id were checked against the 5-second rule. */
  #checkedUpTo = 0;
  /** When each installation's current was last sent. */
  readonly #lastSent = new Map<string, number>();
  /** When something other than the daemon held commands up (a 429 storm: Retry-After is honoured). */
  readonly #held: { from: number; until: number }[] = [];
  /** Commands checked against the 5-second rule, and the slowest answer among them (ms after allowed). */
  timely = { checked: 0, slowestMs: 0 };

  /** The API answered 429 at `from`, asking for a pause until `until`: commands wait for it as any request does. */
  held(from: number, until: number): void {
    this.#held.push({ from, until });
  }

  constructor(sim: Simulation, dbPath: () => string) {
    this.#sim = sim;
    this.#dbPath = dbPath;
  }

  #control(): Database.Database | undefined {
    this.#db ??= controlDatabase(this.#dbPath());
    return this.#db;
  }

  /** After each simulated minute: the manager's requests of that minute. */
  minute(now: number, random: () => number): void {
    const db = this.#control();
    if (!db) return;
    const insert = db.prepare(
      'INSERT INTO commands (target, action, value, requested_at, requested_by) VALUES (?, ?, ?, ?, ?)',
    );
    const at = isoMs(now);
    if (++this.#n % 5 === 0)
      for (const id of this.#sim.fleet.installations.keys()) {
        insert.run(id, 'available_current', String(6 + Math.floor(random() * 27)), at, 'load-manager');
        this.asked++;
      }
    if (this.#n % 20 === 0) {
      const chargers = this.#sim.fleet.activeChargers().filter((c) => c.installationId);
      const c = chargers[Math.floor(random() * chargers.length)];
      if (c) {
        insert.run(c.deviceId, random() < 0.5 ? 'pause' : 'resume', null, at, 'load-manager');
        this.asked++;
      }
    }
  }

  /** The invariants, hourly; a sentence for the first one broken. */
  check(now: number, disturbedUntil: number): string | undefined {
    const db = this.#control();
    if (!db) return undefined;
    const received = this.#sim.commands.received;
    const updates = new Map<string, number[]>();
    for (const r of received) {
      if (r.status < 200 || r.status >= 300 || !r.path.endsWith('/update')) continue;
      const id = r.path.split('/')[3]!.toLowerCase();
      updates.set(id, [...(updates.get(id) ?? []), r.at]);
    }
    for (const [id, times] of updates)
      for (let i = 1; i < times.length; i++)
        if (times[i]! - times[i - 1]! < CURRENT_SPACING_MS - 1_000)
          return `installation ${id}'s current was changed at ${isoMs(times[i - 1]!)} and again at ${isoMs(times[i]!)}, within 15 minutes`;
    const accepted = [...updates.values()].reduce((n, t) => n + t.length, 0);
    const sent = (
      db
        .prepare(
          "SELECT count(*) AS n FROM commands WHERE action = 'available_current' AND sent_at IS NOT NULL",
        )
        .get() as { n: number }
    ).n;
    if (accepted !== sent)
      return `Zaptec accepted ${accepted} current updates for ${sent} commands sent: a command was sent twice, or one was sent unrecorded`;
    const late = db
      .prepare<[string, string], { id: number; requested_at: string }>(
        `SELECT id, requested_at FROM commands WHERE status = 'pending' AND detail IS NULL
         AND requested_at < ? AND requested_at > ? ORDER BY id LIMIT 1`,
      )
      .get(isoMs(now - ANSWERED_WITHIN_MS), isoMs(disturbedUntil));
    if (late) return `command ${late.id}, asked at ${late.requested_at}, was not answered within a minute`;
    return this.#timely(db, disturbedUntil);
  }

  /**
   * Each row answered since the last check, in id order up to the first one still open: sent or finished
   * within 5 s of when the rules allowed it. Rows asked before a disturbance ended, and rows that a 429's pause
   * held up between when they were allowed and when they were answered, are not judged.
   */
  #timely(db: Database.Database, disturbedUntil: number): string | undefined {
    const rows = db
      .prepare<[number], Answered>(
        'SELECT id, target, action, requested_at, sent_at, finished_at, outcome FROM commands WHERE id > ? ORDER BY id',
      )
      .all(this.#checkedUpTo);
    for (const r of rows) {
      const answered = r.sent_at ?? r.finished_at;
      if (!answered) break;
      this.#checkedUpTo = r.id;
      const asked = Date.parse(r.requested_at);
      let allowed = asked;
      if (r.action === 'available_current' && r.sent_at) {
        allowed = Math.max(asked, (this.#lastSent.get(r.target) ?? -Infinity) + CURRENT_SPACING_MS);
        this.#lastSent.set(r.target, Date.parse(r.sent_at));
      } else if (r.outcome === 'superseded') {
        const by = rows.find((n) => n.id > r.id && n.target === r.target && n.action === r.action);
        allowed = by ? Date.parse(by.requested_at) : Date.parse(answered);
      }
      if (asked <= disturbedUntil) continue;
      if (this.#held.some((h) => h.from <= Date.parse(answered) && h.until >= allowed)) continue;
      const late = Date.parse(answered) - allowed;
      this.timely.checked++;
      this.timely.slowestMs = Math.max(this.timely.slowestMs, late);
      if (late > ALLOWED_WITHIN_MS)
        return `command ${r.id} (${r.action} ${r.target}), allowed at ${isoMs(allowed)}, was answered at ${answered}: ${Math.round(late / 1000)} s later`;
    }
    return undefined;
  }

  /** Outcomes so far, for the report (as they were at close, after it). */
  outcomes(): Record<string, number> {
    if (this.#closed) return this.#closed;
    const db = this.#control();
    if (!db) return {};
    const rows = db
      .prepare<[], { outcome: string | null; n: number }>(
        'SELECT outcome, count(*) AS n FROM commands GROUP BY outcome',
      )
      .all();
    return Object.fromEntries(rows.map((r) => [r.outcome ?? 'open', r.n]));
  }

  close(): void {
    this.#closed = this.outcomes();
    this.detach();
  }

  /** Lets go of the control database for now (a handover replaces the daemon's working copy). */
  detach(): void {
    this.#db?.close();
    this.#db = undefined;
  }

  #closed: Record<string, number> | undefined;
}
