/**
 * `npm run bench:resync`: the state reader's schedule at 30,000 chargers in 300 installations (issue 30 §2): every
 * installation polled while its live events connect, the start's resync, then each installation's events
 * connected. Each of these runs on the event loop in one piece; printed in ms. Before the fix (polling interval
 * counted per slot, slots filtered per installation) the same steps took more than 10 minutes.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
const clock = { now: () => Date.now(), sleep: async () => {} };
const reader = new StateReader({
  api: { state: async () => [], stateReadableAt: () => 0 } as never,
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
t = performance.now();
reader.resync();
const resync = performance.now() - t;
t = performance.now();
for (let i = 0; i < 300; i++) reader.setPolling(inst(i), false);
const connected = performance.now() - t;
console.log(
  JSON.stringify({
    chargers: 30000,
    installations: 300,
    resyncMs: Math.round(resync),
    connectEachMs: Math.round(connected / 300),
    connectAllMs: Math.round(connected),
    pollingOnMs: Math.round(polling),
  }),
);
