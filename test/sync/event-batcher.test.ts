/**
 * The live batcher while a consumer holds the write lock (issue 13): the observations are kept and tried
 * again together, not one attempt per message, and all of them are committed within 5 s of the lock's end,
 * whenever it ends. On the stepped clock, against a real SQLite file locked by a second connection.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Observation } from '../../src/observation.js';
import { openDatabase } from '../../src/store/database.js';
import { ObservationStore } from '../../src/store/observations.js';
import { SyncStatusStore } from '../../src/store/sync-status.js';
import { BatcherStoppedError, EventBatcher } from '../../src/sync/event-batcher.js';
import { SteppedClock } from '../clock.js';
import { tempDir } from '../helpers.js';

const C = '93d603a7-ff53-4ed8-8dd6-f79c94819458';

function setup() {
  const path = join(tempDir(), 'z.db');
  const db = openDatabase(path, { create: true, daemon: true });
  const clock = new SteppedClock();
  const lines: string[] = [];
  const log = createLogger({
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  const store = new ObservationStore(db, { historyDays: 7, now: () => clock.now() });
  let attempts = 0;
  const counting = {
    apply: (batch: Observation[]) => {
      attempts++;
      return store.apply(batch);
    },
  } as unknown as ObservationStore;
  const batcher = new EventBatcher({
    observations: counting,
    syncStatus: new SyncStatusStore(db),
    clock,
    log,
    onApplied: () => {},
  });
  const committed = () =>
    (db.prepare('SELECT count(*) AS n FROM charger_state_history').get() as { n: number }).n;
  return { path, clock, batcher, lines, committed, attempts: () => attempts };
}

const obs = (i: number, at: number): Observation => ({
  chargerId: C,
  stateId: 513,
  value: String(i),
  observedAt: at,
  source: 'event',
});

describe('the live batcher while the database refuses writes', () => {
  it.each([7_000, 61_000, 61_300])(
    'keeps every observation, tries again together at most 5 s apart, and commits all within 5 s of a lock released at %i ms',
    async (heldMs) => {
      const { path, clock, batcher, lines, committed, attempts } = setup();
      const blocker = new Database(path);
      blocker.exec('BEGIN IMMEDIATE');
      const t0 = clock.now();
      const done: Promise<void>[] = [];
      // 20 messages a second arrive while the lock is held.
      const n = Math.floor(heldMs / 50);
      for (let i = 0; i < n; i++) {
        await clock.runUntil(t0 + i * 50, 0);
        done.push(batcher.submit(obs(i, t0 + i * 50), undefined));
      }
      await clock.runUntil(t0 + heldMs, 0);
      const during = attempts();
      // Not one attempt per message: the retries double from 250 ms up to one every 5 s.
      expect(during).toBeLessThanOrEqual(Math.ceil(heldMs / 5_000) + 6);
      expect(committed()).toBe(0);
      blocker.exec('ROLLBACK');
      blocker.close();
      await clock.runUntil(t0 + heldMs + 5_000, 0);
      let settled = 0;
      for (const d of done) void d.then(() => settled++);
      await new Promise((r) => setTimeout(r, 20));
      expect(committed()).toBe(n);
      expect(settled).toBe(n);
      const said = lines.map((l) => JSON.parse(l) as { msg: string });
      expect(said.filter((l) => /cannot write live observations/.test(l.msg))).toHaveLength(1);
      expect(said.filter((l) => /written again/.test(l.msg))).toHaveLength(1);
    },
  );

  it('a stop while the lock is held gives the waiting observations up (their messages come back), and refuses new ones', async () => {
    const { path, batcher, committed } = setup();
    const blocker = new Database(path);
    blocker.exec('BEGIN IMMEDIATE');
    const waiting = batcher.submit(obs(1, Date.now()), undefined);
    batcher.flush();
    expect(batcher.waiting).toBe(1);
    batcher.stop();
    await expect(waiting).rejects.toBeInstanceOf(BatcherStoppedError);
    await expect(batcher.submit(obs(2, Date.now()), undefined)).rejects.toBeInstanceOf(BatcherStoppedError);
    blocker.exec('ROLLBACK');
    blocker.close();
    expect(committed()).toBe(0);
  });
});
