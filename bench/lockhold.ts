/**
 * The event loop while a consumer holds the write lock (issue 13 §4): the real `run` process with live events
 * at 200 observations a second, first for 30 s undisturbed, then while another connection holds
 * `BEGIN IMMEDIATE` for 60 s. Reports the daemon's event-loop delay (p99 and max, from
 * `perf_hooks.monitorEventLoopDelay` through /metrics) for each phase. Target: max ≤ 100 ms while the lock
 * is held; and every observation committed once it is released.
 */
import Database from 'better-sqlite3';
import { allConnected, freePort, publishAtRate, sleep, startBench } from './harness.js';
import { record } from './machine.js';

const RATE = 200;
const port = await freePort();
const b = await startBench(
  { installations: 10, chargersPerInstallation: 100 },
  { ZAPTEC_RECONCILE_MINUTES: '600', ZAPTEC_METRICS: `127.0.0.1:${port}` },
);

/** The event-loop delay since the previous scrape (prom-client restarts its histogram at each). */
async function loopDelay(): Promise<{ p99: number; max: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    p99: Math.round(read('nodejs_eventloop_lag_p99_seconds') * 1000),
    max: Math.round(read('nodejs_eventloop_lag_max_seconds') * 1000),
  };
}

let result = '';
try {
  await b.until('live events', () => allConnected(b), 60_000);
  await b.until(
    'the start pass',
    () => b.count('SELECT count(DISTINCT charger_id) AS n FROM charger_state') >= 1000,
    300_000,
  );
  await sleep(5_000);
  await loopDelay();
  const from = new Date(Date.now() + 3_600_000).toISOString();
  const free = await publishAtRate(b, RATE * 30, RATE, [513]);
  const undisturbed = await loopDelay();
  const blocker = new Database(b.dbPath);
  blocker.exec('BEGIN IMMEDIATE');
  const held = await publishAtRate(b, RATE * 60, RATE, [553]);
  blocker.exec('ROLLBACK');
  blocker.close();
  const locked = await loopDelay();
  const total = free.size + held.size;
  const caughtUp = await b.until(
    'every observation committed',
    () => b.count('SELECT count(*) AS n FROM charger_state_history WHERE observed_at >= ?', from) >= total,
    120_000,
  );
  result =
    `${RATE} obs/s, 1,000 chargers: undisturbed 30 s: event-loop delay p99 ${undisturbed.p99} ms, max ${undisturbed.max} ms; ` +
    `a consumer holding the write lock 60 s: p99 ${locked.p99} ms, max ${locked.max} ms — target max ≤ 100 ms: ${locked.max <= 100 ? 'met' : 'MISSED'}; ` +
    `all ${total} observations committed ${Math.round(caughtUp / 100) / 10} s after the lock was released`;
  console.log(result);
} finally {
  await b.stop();
}
record('event loop under a held write lock', 'npm run bench:lockhold', result);
