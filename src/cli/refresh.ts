import { existsSync } from 'node:fs';
import { databasePath, environment } from '../config.js';
import { openDatabase } from '../store/database.js';
import { FINAL_OUTCOMES, insertRefreshRequest, readRefreshRequest } from '../store/refresh-requests.js';
import { delay } from '../time.js';
import { parseCommandArgs, UsageError } from './args.js';

export const EXIT_NOT_FOUND = 4;
export const EXIT_WAIT_TIMEOUT = 5;

/** How often `--wait` looks at the row; the daemon answers within 5 s. */
const WAIT_POLL_MS = 100;

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
    return 1;
  }
  const db = openDatabase(path, { consumer: true });
  try {
    const id = insertRefreshRequest(db, charger);
    const what = charger ? `charger ${charger}` : 'the inventory';
    if (waitSeconds === undefined) {
      process.stdout.write(`queued refresh request ${id} for ${what}\n`);
      return 0;
    }
    const deadline = Date.now() + waitSeconds * 1000;
    let saidDeferred = false;
    for (;;) {
      const row = readRefreshRequest(db, id);
      if (row?.outcome && FINAL_OUTCOMES.has(row.outcome)) {
        process.stdout.write(`${row.outcome}${row.detail ? `: ${row.detail}` : ''}\n`);
        if (row.outcome === 'not_found') return EXIT_NOT_FOUND;
        return row.outcome === 'failed' ? 1 : 0;
      }
      if (row?.outcome === 'deferred' && !saidDeferred) {
        process.stdout.write(`deferred${row.detail ? `: ${row.detail}` : ''}\n`);
        saidDeferred = true;
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
