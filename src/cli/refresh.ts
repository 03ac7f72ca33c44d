/**
 * `refresh [<charger>] [--wait <seconds>]`: writes a `refresh_requests` row (in the control database) for the
 * running daemon and, with --wait, prints its outcome: 0 found/refreshed/deferred (or queued), 4 not found,
 * 5 timed out, 1 failed, 2 no database.
 */
import { FINAL_OUTCOMES, insertRefreshRequest, readRefreshRequest } from '../store/refresh-requests.js';
import { parseCommandArgs } from './args.js';
import { openAsking, waitForAnswer, waitSeconds } from './ask.js';
import { EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK } from './exit-codes.js';

export async function refreshCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { wait: { type: 'string' } }, 1);
  const charger = positionals[0]?.trim() || null;
  const wait = waitSeconds(values.wait);
  const opened = await openAsking('refresh', envFile);
  if (typeof opened === 'number') return opened;
  const db = opened.control;
  try {
    const id = await insertRefreshRequest(db, charger);
    const what = charger ? `charger ${charger}` : 'the inventory';
    if (wait === undefined) {
      process.stdout.write(`queued refresh request ${id} for ${what}\n`);
      return EXIT_OK;
    }
    return await waitForAnswer('refresh', `request ${id} (${what})`, wait, async () => {
      const row = await readRefreshRequest(db, id);
      // `deferred` is an answer too: the daemon has it, and `detail` says when it runs.
      if (!row?.outcome || !(FINAL_OUTCOMES.has(row.outcome) || row.outcome === 'deferred')) return undefined;
      process.stdout.write(`${row.outcome}${row.detail ? `: ${row.detail}` : ''}\n`);
      if (row.outcome === 'not_found') return EXIT_NOT_FOUND;
      return row.outcome === 'failed' ? EXIT_FAILED : EXIT_OK;
    });
  } finally {
    await opened.close();
  }
}
