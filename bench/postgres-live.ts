/**
 * `npm run bench:pg-live`: the daemon on PostgreSQL end to end (CONTRACT §9 "Performance", issue 27 §4). The
 * real `zaptec-sync run`, started as the systemd unit starts it, on a throwaway PostgreSQL on this host; the
 * simulator's broker and the real SDK; 1,000 chargers in 10 installations.
 *
 * - Freshness: 1,000 observations/s for 20 s; a consumer on its own connection LISTENs `<schema>_state` and,
 *   for each notification, reads the named chargers' stored values: each published value is counted
 *   visible at the first notification after which it (or a newer one) is stored. Target: p99 ≤ 150 ms.
 * - Ingest: 100,000 observations published at up to 20,000/s, until every one is in
 *   `charger_state_history` in PostgreSQL. Target: ≥ 3,000/s.
 * - The daemon's RSS at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import pg from 'pg';
import { Simulation } from '../src/simulator/simulation.js';
import { connectionString } from '../src/store/postgres/pool.js';
import { CLI, percentile, rssOf, sleep } from './harness.js';
import { record } from './machine.js';
import { benchPostgres } from './postgres.js';
import { unitStart } from './unit.js';

const db = await benchPostgres('live');
if (!db) process.exit(0);
const { pool, location } = db;
const sim = new Simulation({ fleet: { seed: 42, installations: 10, chargersPerInstallation: 100 } });
await sim.start();
const unit = unitStart();
const daemon: ChildProcess = spawn(process.execPath, [...unit.nodeFlags, CLI, 'run'], {
  env: {
    ...process.env,
    ...unit.env,
    ...sim.env(),
    ZAPTEC_DB: connectionString(location),
    ZAPTEC_PG_SCHEMA: location.schema,
    ZAPTEC_RECONCILE_MINUTES: '600',
    LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});

async function until(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`benchmark: timed out waiting for ${what}`);
    await sleep(100);
  }
}
const count = async (sql: string, ...p: unknown[]) => Number((await pool.query(sql, p)).rows[0]?.n ?? 0);

const chargers = [...sim.fleet.chargers.values()];
let seq = 0;
/** Publishes `total` observations of 513 at `perSecond` (values are sequence numbers); publish times by seq. */
async function publish(total: number, perSecond: number, at: Map<number, number>): Promise<number> {
  const t0 = Date.now() + 3_600_000; // ahead of anything a state read could bring
  const start = Date.now();
  const first = seq;
  while (seq - first < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 5 + 1) * ((perSecond * 5) / 1000)));
    for (; seq - first < due; seq++) {
      const c = chargers[seq % chargers.length]!;
      sim.publish(sim.fleet.set(c.id, 513, String(seq), t0 + seq));
      at.set(seq, Date.now());
    }
    await sleep(5);
  }
  return t0 + first;
}

const lines: string[] = [];
try {
  await until(
    'live events',
    async () => (await count("SELECT count(*) AS n FROM sync_status WHERE events = 'connected'")) === 10,
    60_000,
  );
  await sleep(3_000);

  // Freshness through LISTEN.
  const consumer = new pg.Client({ connectionString: connectionString(location) });
  await consumer.connect();
  const published = new Map<number, number>();
  const seen: number[] = [];
  const lastSeen = new Map<string, number>();
  let reading = Promise.resolve();
  consumer.on('notification', ({ payload }) => {
    const at = performance.timeOrigin + performance.now();
    const ids = JSON.parse(payload ?? '[]') as string[] | '*';
    reading = reading.then(async () => {
      const r = await pool.query<{ charger_id: string; value: string }>(
        `SELECT charger_id, value FROM charger_state WHERE state_id = 513${ids === '*' ? '' : ' AND charger_id = ANY($1)'}`,
        ids === '*' ? [] : [ids],
      );
      for (const row of r.rows) {
        const now = Number(row.value);
        const before = lastSeen.get(row.charger_id) ?? -1;
        if (!(now > before)) continue;
        lastSeen.set(row.charger_id, now);
        // Every value of this charger up to `now` is visible from this notification on.
        for (let s = now; s > before; s -= chargers.length) {
          const p = published.get(s);
          if (p !== undefined) {
            seen.push(at - p);
            published.delete(s);
          }
        }
      }
    });
  });
  await consumer.query(`LISTEN ${location.schema}_state`);
  const total = 20_000;
  await publish(total, 1_000, published);
  await until('every value notified', async () => published.size === 0, 60_000).catch(() => {});
  await reading;
  await consumer.end();
  const sorted = seen.sort((x, y) => x - y);
  const p99 = percentile(sorted, 0.99);
  lines.push(
    `freshness at 1,000/s (publish → a LISTENing consumer notified with the value stored): p50 ${percentile(sorted, 0.5).toFixed(0)} ms, ` +
      `p95 ${percentile(sorted, 0.95).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (${sorted.length} of ${total} observations) — ` +
      `target p99 ≤ 150 ms: ${p99 <= 150 && sorted.length === total ? 'met' : 'MISSED'}`,
  );
  console.log(lines.at(-1));

  // Ingest.
  const start = Date.now();
  const from = new Date(await publish(100_000, 20_000, new Map())).toISOString();
  await until(
    'all committed in PostgreSQL',
    async () =>
      (await count('SELECT count(*) AS n FROM charger_state_history WHERE observed_at >= $1', from)) >=
      100_000,
    300_000,
  );
  const seconds = (Date.now() - start) / 1000;
  const rate = Math.round(100_000 / seconds);
  lines.push(
    `ingest: ${rate.toLocaleString('en')} obs/s (100,000 over 1,000 chargers in ${seconds.toFixed(1)} s, publish → in PostgreSQL) — target ≥ 3,000/s: ${rate >= 3000 ? 'met' : 'MISSED'}`,
  );
  console.log(lines.at(-1));
  lines.push(`daemon RSS at the end ${(rssOf(daemon.pid!) / 1048576).toFixed(0)} MB`);
  console.log(lines.at(-1));
} finally {
  daemon.kill('SIGTERM');
  if (daemon.exitCode === null) await new Promise((r) => daemon.once('exit', r));
  await sim.stop();
  await db.stop();
}
record('pg-live', 'npm run bench:pg-live', `the daemon on PostgreSQL on the same host: ${lines.join('; ')}`);
