/**
 * `npm run bench:notify`: PostgreSQL's push to consumers (CONTRACT §9, issue 27 §4). Observations of 1,000
 * chargers are applied through `PgObservationStore` at `--rate` per second (default 1,000) in batches as the
 * live path makes them (every 10 ms), for `--seconds` (default 20); a consumer on its own connection LISTENs
 * `<schema>_state`. Printed: from a batch's start (the observations in hand) to its commit, and to the
 * consumer's notification naming its chargers — p50, p95, p99 and max. Target: notification p99 ≤ 150 ms.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Observation } from '../src/observation.js';
import { PgObservationStore } from '../src/store/postgres/observations.js';
import { connectionString } from '../src/store/postgres/pool.js';
import { record } from './machine.js';
import { benchPostgres } from './postgres.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const CHARGERS = 1_000;
const BATCH_EVERY_MS = 10;
const TARGET_P99_MS = 150;

const charger = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

const db = await benchPostgres('notify');
if (!db) process.exit(0);
const { pool, location } = db;
await pool.query(
  `INSERT INTO chargers (id, device_id, name, device_type, data, first_seen_at, last_seen_at)
   SELECT '00000000-0000-4000-8000-' || lpad(i::text, 12, '0'), 'ZAP' || lpad(i::text, 6, '0'), NULL, 4, '{}',
          now(), now()
   FROM generate_series(0, $1 - 1) AS i`,
  [CHARGERS],
);
const store = new PgObservationStore(pool, location.schema, { historyDays: 7, now: () => Date.now() });

// The consumer: its own connection, as a program elsewhere would have.
const consumer = new pg.Client({ connectionString: connectionString(location) });
await consumer.connect();
/** Each charger's pending batches: when the batch started, waiting for the notification that names it. */
const waiting = new Map<string, number[]>();
const toNotify: number[] = [];
consumer.on('notification', ({ payload }) => {
  const at = performance.now();
  const ids = JSON.parse(payload ?? '[]') as string[] | '*';
  for (const id of ids === '*' ? [...waiting.keys()] : ids) {
    for (const started of waiting.get(id) ?? []) toNotify.push(at - started);
    waiting.delete(id);
  }
});
await consumer.query(`LISTEN ${location.schema}_state`);

const toCommit: number[] = [];
const perBatch = Math.max(1, Math.round((RATE * BATCH_EVERY_MS) / 1000));
let n = 0;
const end = performance.now() + SECONDS * 1000;
for (let next = performance.now(); next < end; next += BATCH_EVERY_MS) {
  const wait = next - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const started = performance.now();
  const batch: Observation[] = [];
  for (let i = 0; i < perBatch; i++, n++) {
    const id = charger((n * 7919) % CHARGERS);
    batch.push({ chargerId: id, stateId: 513, value: String(n), observedAt: Date.now(), source: 'event' });
    const list = waiting.get(id) ?? [];
    list.push(started);
    waiting.set(id, list);
  }
  await store.apply(batch);
  toCommit.push(performance.now() - started);
}
await new Promise((r) => setTimeout(r, 500)); // the last notifications
await consumer.end();
await db.stop();

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN;
};
const figures = (xs: number[]) =>
  `p50 ${q(xs, 0.5).toFixed(0)} ms, p95 ${q(xs, 0.95).toFixed(0)} ms, p99 ${q(xs, 0.99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;
const p99 = q(toNotify, 0.99);
const line = `PostgreSQL on this host, ${CHARGERS.toLocaleString('en')} chargers, ${RATE}/s in batches every ${BATCH_EVERY_MS} ms for ${SECONDS} s (${n.toLocaleString('en')} observations, ${toNotify.length.toLocaleString('en')} notified, ${waiting.size} never): batch start → committed ${figures(toCommit)}; → a LISTENing consumer's notification ${figures(toNotify)} — target p99 ≤ ${TARGET_P99_MS} ms: ${p99 <= TARGET_P99_MS ? 'met' : 'MISSED'}`;
console.log(line);
record('notify', `npm run bench:notify${RATE === 1000 ? '' : ` -- --rate ${RATE}`}`, line);
