import { existsSync } from 'node:fs';
import { databasePath, environment } from '../config.js';
import { readDaemonRow } from '../store/daemon-row.js';
import { type Db, openDatabase } from '../store/database.js';
import { HEARTBEAT_STALE_MS } from '../store/health.js';
import { FINAL_OUTCOMES, insertRefreshRequest, readRefreshRequest } from '../store/refresh-requests.js';
import { delay } from '../time.js';
import { parseCommandArgs, UsageError } from './args.js';

import { EXIT_FAILED, EXIT_NO_DATABASE, EXIT_NOT_FOUND, EXIT_OK, EXIT_WAIT_TIMEOUT } from './exit-codes.js';

/** How often `--wait` looks at the row; the daemon answers within 5 s. */
const WAIT_POLL_MS = 100;

function daemonRunning(db: Db): boolean {
  const row = readDaemonRow(db);
  if (!row?.heartbeat_at || row.stopped_at) return false;
  return Date.now() - Date.parse(row.heartbeat_at) <= HEARTBEAT_STALE_MS;
}

/**
 * `refresh [<charger>] [--wait <seconds>]`: writes a `refresh_requests` row for the running daemon and,
 * with --wait, prints its outcome: 0 found/refreshed (or queued), 4 not found, 5 timed out, 1 failed.
 */
export async function refreshCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { wait: { type: 'string' } }, 1);
  const charger = positionals[0]?.trim() || null;
  let waitSeconds: number | undefined;
  if (values.wait !== undefined) {
    waitSeconds = Number(values.wait);
    if (!/^\d+(\.\d+)?$/.test(values.wait) || !Number.isFinite(waitSeconds)) {
      throw new UsageError('--wait takes a number of seconds');
    }
  }
  const path = databasePath(environment(envFile));
  if (!existsSync(path)) {
    process.stderr.write(`zaptec-sync refresh: no database at ${path} (has the daemon run?)\n`);
    return EXIT_NO_DATABASE;
  }
  const db = openDatabase(path, { consumer: true });
  try {
    const id = insertRefreshRequest(db, charger);
    const what = charger ? `charger ${charger}` : 'the inventory';
    const running = daemonRunning(db);
    if (!running)
      process.stderr.write(
        `zaptec-sync refresh: no daemon is running on ${path}; request ${id} waits until one starts\n`,
      );
    if (waitSeconds === undefined) {
      process.stdout.write(`queued refresh request ${id} for ${what}\n`);
      return EXIT_OK;
    }
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const row = readRefreshRequest(db, id);
      // `deferred` is an answer too: the daemon has it, and `detail` says when it runs.
      if (row?.outcome && (FINAL_OUTCOMES.has(row.outcome) || row.outcome === 'deferred')) {
        process.stdout.write(`${row.outcome}${row.detail ? `: ${row.detail}` : ''}\n`);
        if (row.outcome === 'not_found') return EXIT_NOT_FOUND;
        return row.outcome === 'failed' ? EXIT_FAILED : EXIT_OK;
      }
      if (Date.now() >= deadline) {
        process.stderr.write(
          `zaptec-sync refresh: no outcome for request ${id} (${what}) within ${waitSeconds} s\n`,
        );
        return EXIT_WAIT_TIMEOUT;
      }
      await delay(Math.min(WAIT_POLL_MS, Math.max(1, deadline - Date.now())));
    }
  } finally {
    db.close();
  }
}
