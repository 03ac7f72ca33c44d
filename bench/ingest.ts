/**
 * Ingest (issue 8 §1): sustained observations/s from publish to committed in SQLite, 100,000 messages over
 * 1,000 chargers, with the real `run` process and the real SDK; and the decode + apply path alone.
 * Targets: ≥ 3,000/s end to end, ≥ 100,000/s decode + apply.
 * `--user-group`: end to end only, through one user group's connection carrying the 10 installations
 * (issue 16 §5; decode + apply does not depend on the connection).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/database.js';
import { WalSync } from '../src/store/durability.js';
import { ObservationStore } from '../src/store/observations.js';
import { decodeObservation } from '../src/zaptec/message.js';
import { encodeNbfx } from '../src/zaptec/nbfx.js';
import { allConnected, carriedByGroup, publishAtRate, startBench, userGroupArg } from './harness.js';
import { record } from './machine.js';

const GROUP = userGroupArg();

async function endToEnd(): Promise<string> {
  const b = await startBench(
    { installations: 10, chargersPerInstallation: 100 },
    {},
    GROUP ? (sim) => void sim.addUserGroup() : undefined,
  );
  try {
    await b.until('live events', () => allConnected(b), 60_000);
    if (GROUP) await carriedByGroup(b);
    const from = new Date(Date.now() + 3_600_000 - 1000).toISOString();
    const start = Date.now();
    await publishAtRate(b, 100_000, 20_000, [513, 553, 501, 502, 503, 507, 508, 509, 710, 554]);
    const published = Date.now() - start;
    await b.until(
      'all committed',
      () =>
        b.count('SELECT count(*) AS n FROM charger_state_history WHERE observed_at >= ?', from) >= 100_000,
      300_000,
    );
    const seconds = (Date.now() - start) / 1000;
    const rate = Math.round(100_000 / seconds);
    const over = GROUP ? ', all through one user-group connection' : '';
    return `end to end: ${rate.toLocaleString('en')} obs/s (100,000 over 1,000 chargers${over} in ${seconds.toFixed(1)} s; publishing alone took ${(published / 1000).toFixed(1)} s in the same process) — target ≥ 3,000/s: ${rate >= 3000 ? 'met' : 'MISSED'}`;
  } finally {
    await b.stop();
  }
}

/** Decode and apply in batches of 100, each made durable by the group commit as in the daemon. */
async function decodeApply(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-bench-'));
  const db = openDatabase(join(dir, 'b.db'), { create: true });
  const wal = new WalSync(db);
  const store = new ObservationStore(db, { historyDays: 7, now: () => Date.now() });
  const ids = Array.from(
    { length: 1000 },
    (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
  );
  const bodies = Array.from({ length: 100_000 }, (_, k) =>
    encodeNbfx(
      JSON.stringify({
        DeviceId: 'ZAP000001',
        DeviceType: 4,
        ChargerId: ids[k % 1000],
        StateId: 513 + (Math.floor(k / 1000) % 10),
        Timestamp: new Date(Date.now() + k).toISOString(),
        ValueAsString: String(k),
      }),
    ),
  );
  const start = process.hrtime.bigint();
  const synced: Promise<void>[] = [];
  for (let i = 0; i < bodies.length; i += 100) {
    store.apply(bodies.slice(i, i + 100).map((body) => decodeObservation(body)));
    synced.push(wal.sync());
    if (synced.length % 10 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  await Promise.all(synced);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  wal.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
  const rate = Math.round(100_000 / seconds);
  return `decode + apply: ${rate.toLocaleString('en')} obs/s (MC-NBFX bodies, batches of 100, durable by group commit) — target ≥ 100,000/s: ${rate >= 100_000 ? 'met' : 'MISSED (SQLite-bound, see the apply row)'}`;
}

const lines = GROUP ? [await endToEnd()] : [await endToEnd(), await decodeApply()];
for (const l of lines) console.log(l);
record('ingest', `npm run bench:ingest${GROUP ? ' -- --user-group' : ''}`, lines.join('; '));
