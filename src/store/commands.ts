/**
 * `commands`, in the control database (CONTRACT §10): consumers insert, the daemon answers. A row goes `pending`
 * → `sent` → `done` with an `outcome`. `insertCommand`/`readCommand` take a connection to the control file
 * itself; `CommandStore` the daemon's connection, where it is attached as `control`.
 */
import { isoMs } from '../time.js';
import type { Db } from './database.js';
import type { Sql } from './reader.js';

export const COMMAND_ACTIONS = ['pause', 'resume', 'restart', 'deauthorize', 'available_current'] as const;
export type CommandAction = (typeof COMMAND_ACTIONS)[number];

export type CommandOutcome =
  | 'confirmed'
  | 'unconfirmed'
  | 'unnecessary'
  | 'superseded'
  | 'rejected'
  | 'failed'
  | 'refused'
  | 'not_found';

export interface CommandRow {
  id: number;
  target: string;
  action: string;
  value: string | null;
  requested_at: string;
  requested_by: string | null;
  status: 'pending' | 'sent' | 'done';
  sent_at: string | null;
  finished_at: string | null;
  outcome: CommandOutcome | null;
  detail: string | null;
}

/** A consumer's command (`command`, `current`), in either store; its id. */
export async function insertCommand(
  db: Sql,
  row: { target: string; action: string; value: string | null; requestedBy: string | null },
): Promise<number> {
  const r = await db.get<{ id: number }>(
    'INSERT INTO commands (target, action, value, requested_by) VALUES (?, ?, ?, ?) RETURNING id',
    row.target,
    row.action,
    row.value,
    row.requestedBy,
  );
  return Number(r!.id);
}

export function readCommand(db: Sql, id: number): Promise<CommandRow | undefined> {
  return db.get<CommandRow>('SELECT * FROM commands WHERE id = ?', id);
}

export class CommandStore {
  readonly #open;
  readonly #sent;
  readonly #finish;
  readonly #detail;
  readonly #lastUpdate;
  readonly #dataVersion;

  constructor(db: Db) {
    this.#dataVersion = db.prepare<[], number>('PRAGMA control.data_version').pluck();
    this.#open = db.prepare<[], CommandRow>(
      "SELECT * FROM control.commands WHERE status <> 'done' ORDER BY id",
    );
    this.#sent = db.prepare(
      "UPDATE control.commands SET status = 'sent', sent_at = ?, detail = ? WHERE id = ? AND status = 'pending'",
    );
    this.#finish = db.prepare(
      "UPDATE control.commands SET status = 'done', outcome = ?, detail = ?, finished_at = ? WHERE id = ? AND status <> 'done'",
    );
    this.#detail = db.prepare(
      "UPDATE control.commands SET detail = ? WHERE id = ? AND status = 'pending' AND detail IS NOT ?",
    );
    this.#lastUpdate = db.prepare<[string], { at: string | null }>(
      `SELECT max(sent_at) AS at FROM control.commands
       WHERE action = 'available_current' AND target = ? COLLATE NOCASE AND sent_at IS NOT NULL`,
    );
  }

  /** Every command not done yet, oldest first. */
  open(): CommandRow[] {
    return this.#open.all();
  }

  sent(id: number, now: number, detail: string | null = null): void {
    this.#sent.run(isoMs(now), detail, id);
  }

  finish(id: number, outcome: CommandOutcome, detail: string | null, now: number): void {
    this.#finish.run(outcome, detail, isoMs(now), id);
  }

  /** A pending command's `detail` (why it waits), written only when it changes. */
  waiting(id: number, detail: string): void {
    this.#detail.run(detail, id, detail);
  }

  /** When the installation's available current was last sent to Zaptec (its 15-minute rule), across restarts. */
  lastCurrentUpdate(installationId: string): number | undefined {
    const at = this.#lastUpdate.get(installationId)?.at;
    return at ? Date.parse(at) : undefined;
  }

  /** Moves when another connection commits to the control database. */
  dataVersion(): number {
    return this.#dataVersion.get()!;
  }
}
