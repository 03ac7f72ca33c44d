/**
 * Freshness (issue 8 §2): publish → visible in SQLite, p50/p95/p99, at 100/s and 1,000/s, with the real
 * `run` process and the real SDK. Target: p99 ≤ 100 ms at 1,000/s.
 * `--user-group`: the same through one user group's connection carrying the 10 installations (issue 16 §5).
 */
import {
  allConnected,
  carriedByGroup,
  latencies,
  percentile,
  publishAtRate,
  startBench,
  userGroupArg,
} from './harness.js';
import { record } from './machine.js';

const GROUP = userGroupArg();
const b = await startBench(
  { installations: 10, chargersPerInstallation: 100 },
  { ZAPTEC_RECONCILE_MINUTES: '600' },
  GROUP ? (sim) => void sim.addUserGroup() : undefined,
);
const lines: string[] = [];
try {
  await b.until('live events', () => allConnected(b), 60_000);
  if (GROUP) await carriedByGroup(b);
  for (const [rate, seconds] of [
    [100, 20],
    [1000, 20],
  ] as const) {
    const from = new Date(Date.now() + 3_600_000).toISOString();
    const published = await publishAtRate(b, rate * seconds, rate, [513, 553]);
    await b.until('committed', () => latencies(b, published, from).length >= published.size, 60_000);
    const l = latencies(b, published, from);
    const line = `${rate}/s: p50 ${percentile(l, 0.5)} ms, p95 ${percentile(l, 0.95)} ms, p99 ${percentile(l, 0.99)} ms (${l.length} observations)`;
    lines.push(
      rate === 1000
        ? `${line} — target p99 ≤ 100 ms: ${percentile(l, 0.99) <= 100 ? 'met' : 'MISSED'}`
        : line,
    );
    console.log(lines.at(-1));
  }
} finally {
  await b.stop();
}
record(
  'freshness',
  `npm run bench:freshness${GROUP ? ' -- --user-group' : ''}`,
  `publish → committed, 1,000 chargers${GROUP ? ' in 10 installations, all through one user-group connection' : ''}: ${lines.join('; ')}`,
);
