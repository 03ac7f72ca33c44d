/** `reconcile_spacing`: each charger's learned reconciliation spacing, kept across restarts (internal). */
import type { Db } from './database.js';

export class ReconcileSpacingStore {
  readonly #all;
  readonly #save;

  constructor(db: Db) {
    this.#all = db.prepare<[], { charger_id: string; spacing_ms: number }>(
      'SELECT charger_id, spacing_ms FROM reconcile_spacing',
    );
    this.#save = db.prepare(
      `INSERT INTO reconcile_spacing (charger_id, spacing_ms) VALUES (?, ?)
       ON CONFLICT (charger_id) DO UPDATE SET spacing_ms = excluded.spacing_ms`,
    );
  }

  /** Every charger's spacing (ms) as last learned. */
  all(): Map<string, number> {
    return new Map(this.#all.all().map((r) => [r.charger_id, r.spacing_ms]));
  }

  save(chargerId: string, spacingMs: number): void {
    this.#save.run(chargerId, spacingMs);
  }
}
