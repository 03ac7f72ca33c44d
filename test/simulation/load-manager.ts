/**
 * The simulated month's load manager (issue 29 §4): a consumer that acts through the daemon, as an energy
 * manager does — every 5 simulated minutes it asks for each installation's available current, every 20 a
 * charger paused or resumed — and the invariants of CONTRACT §10 checked against the simulator's own log:
 * an installation's current never changed twice within 15 minutes, no command accepted twice, every command
 * answered within a minute of being asked (sent, finished, or waiting with its reason).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Simulation } from '../../src/simulator/simulation.js';
import { isoMs } from '../../src/time.js';

const MIN = 60_000;
/** Zaptec's rule the daemon keeps (CONTRACT §10). */
const CURRENT_SPACING_MS = 15 * MIN;
/** A command is answered (sent, done, or waiting with its reason) this soon after it was asked. */
const ANSWERED_WITHIN_MS = MIN;

export class LoadManager {
  readonly #sim: Simulation;
  readonly #path: string;
  #db: Database.Database | undefined;
  #n = 0;
  asked = 0;

  constructor(sim: Simulation, dbPath: string) {
    this.#sim = sim;
    this.#path = join(dbPath, '..', 'control.db');
  }

  #control(): Database.Database | undefined {
    if (this.#db) return this.#db;
    try {
      this.#db = new Database(this.#path, { fileMustExist: true });
      this.#db.pragma('busy_timeout = 5000');
    } catch {
      return undefined; // the daemon has not created it yet
    }
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
    this.#db?.close();
  }

  #closed: Record<string, number> | undefined;
}
