/**
 * `npm run bench:resync`: the state reader's schedule at 30,000 chargers in 300 installations (issue 30 §2): every
 * installation polled while its live events connect, the start's resync, then each installation's events
 * connected, over a database with each charger's states stored. Each of these runs on the event loop in one
 * piece; printed in ms. Before the fix (polling interval
 * counted per slot, slots filtered per installation) the same steps took more than 10 minutes.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createLogger } from '../src/log.js';
import { openDatabase } from '../src/store/database.js';
import { InventoryStore } from '../src/store/inventory.js';
import { ObservationStore } from '../src/store/observations.js';
import { SyncStatusStore } from '../src/store/sync-status.js';
import { StateReader } from '../src/sync/state-reader.js';

const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'rs-')), 'z.db'), { create: true });
const inst = (i: number) => `00000000-0000-4000-9000-${String(i).padStart(12, '0')}`;
const ch = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const inventory = new InventoryStore(db);
inventory.replace(
  {
    installations: Array.from({ length: 300 }, (_, i) => ({ id: inst(i), name: `i${i}`, data: {} })),
    circuits: [],
    chargers: Array.from({ length: 30_000 }, (_, i) => ({
      id: ch(i),
      installationId: inst(i % 300),
      circuitId: null,
      deviceId: `Z${i}`,
      name: null,
      deviceType: 4,
      data: {},
    })),
    hierarchyMissing: new Set<string>(),
  },
  Date.now(),
);
// A fleet that has run: each charger's states stored (STATES of them, as a Zaptec Go reports about that many),
// so that the resync's question "when was each charger last heard from" reads what it reads in production.
const STATES = 40;
const stateRow = db.prepare(
  `INSERT INTO charger_state (charger_id, state_id, value, observed_at, received_at, source)
   VALUES (?, ?, '1', ?, ?, 'event')`,
);
db.transaction(() => {
  const t0 = Date.now() - 3_600_000;
  for (let i = 0; i < 30_000; i++)
    for (let s = 0; s < STATES; s++) {
      const at = new Date(t0 + ((i * 7 + s * 13) % 3_600_000)).toISOString();
      stateRow.run(ch(i), 100 + s, at, at);
    }
})();
/** Real time: the resync's pages let the event loop run between them through the clock's sleep. */
const clock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
const reader = new StateReader({
  api: {
    state: async () => [],
    stateReadableAt: () => 0,
    lastStateRead: () => undefined,
    chargersRead: () => new Set(),
  } as never,
  observations: new ObservationStore(db, { historyDays: 7, now: () => Date.now() }),
  inventory,
  syncStatus: new SyncStatusStore(db),
  clock,
  log: createLogger({ level: 'silent' }),
  reconcileMs: 3_600_000,
  reconcileMaxMs: 21_600_000,
  requestsPerMinute: 600,
});
let t = performance.now();
for (let i = 0; i < 300; i++) reader.setPolling(inst(i), true);
const polling = performance.now() - t;
// The resync: its longest piece on the event loop (what every other task waits for), and all of it.
t = performance.now();
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
reader.resync();
const firstPiece = performance.now() - t;
await reader.settled();
const resync = performance.now() - t;
await new Promise((r) => setTimeout(r, 5));
loop.disable();
t = performance.now();
for (let i = 0; i < 300; i++) reader.setPolling(inst(i), false);
const connected = performance.now() - t;
console.log(
  JSON.stringify({
    chargers: 30000,
    installations: 300,
    statesPerCharger: STATES,
    resyncMs: Math.round(resync),
    resyncFirstPieceMs: Math.round(firstPiece),
    resyncLoopDelayMaxMs: Math.round(loop.max / 1e6),
    connectEachMs: Math.round(connected / 300),
    connectAllMs: Math.round(connected),
    pollingOnMs: Math.round(polling),
  }),
);
