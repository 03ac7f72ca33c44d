/**
 * Observations applied per second through ObservationStore.apply, in batches of 100 and of 1, on a
 * database with 10,000 chargers (issue 2; target ≥ 100,000/s in batches of 100); and the same as the daemon
 * applies them with a PostgreSQL on this host, in the same run (issue 27): into its working copy, each batch
 * carried and committed there (synchronous_commit on) before it counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log.js';
import type { Observation } from '../src/observation.js';
import { type Db, openDatabase } from '../src/store/database.js';
import { WalSync } from '../src/store/durability.js';
import { InventoryStore } from '../src/store/inventory.js';
import { ObservationStore } from '../src/store/observations.js';
import { PgLease } from '../src/store/postgres/lease.js';
import { Replicator } from '../src/store/postgres/replicator.js';
import { WorkingCopy } from '../src/store/postgres/working-copy.js';
import { record } from './machine.js';
import { benchPostgres } from './postgres.js';

const CHARGERS = 10_000;
const STATES = [-2, 501, 502, 503, 507, 508, 509, 513, 553, 710];

function chargerId(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

/**
 * `group`: the daemon's way, each batch committed and then made durable by WalSync's shared fsync before the
 * next is counted as done (the loop yields as the daemon's would); `full`: synchronous=FULL, an fsync inside
 * every commit, the obvious way; `none`: no sync at all (what a process crash survives, not a power cut).
 */
type Durability = 'group' | 'full' | 'none';

/** 10,000 chargers' states in turn, each observation newer than the last. */
function makeBatches(batchSize: number, total: number, t0: number): Observation[][] {
  const batches: Observation[][] = [];
  for (let n = 0; n < total; n += batchSize) {
    const batch: Observation[] = [];
    for (let k = n; k < Math.min(total, n + batchSize); k++) {
      batch.push({
        chargerId: chargerId(k % CHARGERS),
        stateId: STATES[Math.floor(k / CHARGERS) % STATES.length]!,
        value: String(k % 7400),
        observedAt: t0 + k,
        source: 'event',
      });
    }
    batches.push(batch);
  }
  return batches;
}

/** The bench's 10,000 chargers in one installation. */
function seedInventory(db: Db, t0: number): void {
  new InventoryStore(db).replace(
    {
      installations: [{ id: 'inst', name: 'bench', data: {} }],
      circuits: [],
      chargers: Array.from({ length: CHARGERS }, (_, i) => ({
        id: chargerId(i),
        installationId: 'inst',
        circuitId: null,
        deviceId: `ZAP${String(i).padStart(6, '0')}`,
        name: `c${i}`,
        deviceType: 4,
        data: { Id: chargerId(i) },
      })),
      hierarchyMissing: new Set(),
    },
    t0,
  );
}

async function run(batchSize: number, total: number, durability: Durability): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-bench-'));
  const db = openDatabase(join(dir, 'bench.db'), { create: true });
  if (durability === 'full') db.pragma('synchronous = FULL');
  const wal = new WalSync(db);
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  seedInventory(db, t0);
  const store = new ObservationStore(db, { historyDays: 7, now: () => t0 + 3_600_000 });
  const batches = makeBatches(batchSize, total, t0);
  const start = process.hrtime.bigint();
  const synced: Promise<void>[] = [];
  for (const b of batches) {
    store.apply(b);
    if (durability !== 'group') continue;
    synced.push(wal.sync());
    // The daemon's loop turns between batches: let finished syncs start the next shared one.
    if (synced.length % 10 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  await Promise.all(synced);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  wal.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return total / seconds;
}

/**
 * The same batches as the daemon applies them on PostgreSQL: into its working copy, each batch then carried by
 * the Replicator (a transaction proving the lease, synchronous_commit on) before it counts as done; concurrent
 * flushes shared as the daemon's are.
 */
async function runPostgres(sizes: { batchSize: number; total: number }[]): Promise<number[] | undefined> {
  const pg = await benchPostgres();
  if (!pg) return undefined;
  const lease = new PgLease({ location: pg.location });
  try {
    if (!(await lease.tryAcquire())) throw new Error('the bench could not take the lease');
    const t0 = Date.parse('2024-01-01T00:00:00Z');
    const log = createLogger({ level: 'silent' });
    const rates: number[] = [];
    for (const { batchSize, total } of sizes) {
      await pg.pool.query('TRUNCATE bench.charger_state, bench.charger_state_history');
      const copy = await WorkingCopy.load(pg.pool, 'bench', t0 + 3_600_000);
      try {
        const replicator = new Replicator({
          copy,
          pool: pg.pool,
          lease,
          schema: 'bench',
          log,
          historyDays: 7,
        });
        seedInventory(copy.db, t0);
        await replicator.flush();
        const store = new ObservationStore(copy.db, { historyDays: 7, now: () => t0 + 3_600_000 });
        const batches = makeBatches(batchSize, total, t0);
        const start = process.hrtime.bigint();
        const carried: Promise<void>[] = [];
        for (const b of batches) {
          store.apply(b);
          carried.push(replicator.flush());
          if (carried.length % 10 === 0) await new Promise<void>((r) => setImmediate(r));
        }
        await Promise.all(carried);
        rates.push(total / (Number(process.hrtime.bigint() - start) / 1e9));
      } finally {
        copy.close();
      }
    }
    return rates;
  } finally {
    await lease.release();
    await pg.stop();
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en');
const by100 = await run(100, 200_000, 'group');
const by1 = await run(1, 20_000, 'group');
const full100 = await run(100, 50_000, 'full');
const full1 = await run(1, 5_000, 'full');
const none100 = await run(100, 200_000, 'none');
const pg = await runPostgres([
  { batchSize: 100, total: 100_000 },
  { batchSize: 1, total: 5_000 },
]);
const line =
  `durable (group commit): batches of 100: ${fmt(by100)} obs/s; batches of 1: ${fmt(by1)} obs/s ` +
  `(10,000 chargers, history on, target ≥ 100,000/s in batches of 100: ${by100 >= 100_000 ? 'met' : 'MISSED'}); ` +
  `synchronous=FULL instead: ${fmt(full100)} and ${fmt(full1)} obs/s; no sync at all: ${fmt(none100)} obs/s in batches of 100; ` +
  (pg
    ? `PostgreSQL on this host (the daemon's way: the working copy, each batch carried before it counts, synchronous_commit on): ${fmt(pg[0]!)} obs/s in batches of 100, ${fmt(pg[1]!)} in batches of 1`
    : 'PostgreSQL: not measured (no server here)');
console.log(line);
record('apply', 'npm run bench:apply', line);
