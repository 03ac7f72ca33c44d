/**
 * What `refresh`, `command` and `current` share: a row written into the control database for the running daemon
 * (CONTRACT §10), and with `--wait`, waiting for its answer.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { controlDatabasePath, databasePath, environment } from '../config.js';
import { describeError } from '../log.js';
import { openControl, prepareControl } from '../store/control.js';
import { readDaemonRow } from '../store/daemon-row.js';
import { type Db, isSetupFault, openDatabase } from '../store/database.js';
import { HEARTBEAT_STALE_MS } from '../store/health.js';
import { delay } from '../time.js';
import { UsageError } from './args.js';
import { EXIT_CONFIG, EXIT_NO_DATABASE, EXIT_WAIT_TIMEOUT } from './exit-codes.js';

/** How often `--wait` looks at the row; the daemon answers within 5 s. */
const WAIT_POLL_MS = 100;

/** `--wait <seconds>`, checked. */
export function waitSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n))
    throw new UsageError('--wait takes a number of seconds');
  return n;
}

/**
 * Opens the control database of the configured database (created when the daemon has not yet), after saying
 * when no daemon runs to answer. A number is the exit status when there is no database at all.
 */
export function openAsking(command: string, envFile: string | undefined): { control: Db } | number {
  const env = environment(envFile);
  const path = databasePath(env);
  if (!existsSync(path)) {
    process.stderr.write(`zaptec-sync ${command}: no database at ${path} (has the daemon run?)\n`);
    return EXIT_NO_DATABASE;
  }
  if (!daemonRunning(path))
    process.stderr.write(
      `zaptec-sync ${command}: no daemon is running on ${path}; the request waits until one starts\n`,
    );
  const controlPath = controlDatabasePath(env);
  try {
    if (!existsSync(controlPath)) prepareControl(controlPath);
    // Asking is writing (the file, and its directory for the journal): found out now, in one line a person can
    // act on, not at the insert.
    accessSync(controlPath, constants.W_OK);
    accessSync(dirname(controlPath), constants.W_OK);
    return { control: openControl(controlPath) };
  } catch (err) {
    if (!isSetupFault(err)) throw err;
    process.stderr.write(
      `zaptec-sync ${command}: this user may not write the control database ${controlPath}, where requests go (${(err as { code?: string }).code ?? describeError(err)}); ask to be in its group (zaptec-sync-control under systemd)\n`,
    );
    return EXIT_CONFIG;
  }
}

function daemonRunning(path: string): boolean {
  const db = openDatabase(path, { readonly: true });
  try {
    const row = readDaemonRow(db);
    if (!row?.heartbeat_at || row.stopped_at) return false;
    return Date.now() - Date.parse(row.heartbeat_at) <= HEARTBEAT_STALE_MS;
  } finally {
    db.close();
  }
}

/**
 * Polls `answer` until it returns an exit status, or `seconds` have passed (EXIT_WAIT_TIMEOUT, after one line
 * saying what got no answer).
 */
export async function waitForAnswer(
  command: string,
  what: string,
  seconds: number,
  answer: () => number | undefined,
): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const code = answer();
    if (code !== undefined) return code;
    if (Date.now() >= deadline) {
      process.stderr.write(`zaptec-sync ${command}: no answer for ${what} within ${seconds} s\n`);
      return EXIT_WAIT_TIMEOUT;
    }
    await delay(Math.min(WAIT_POLL_MS, Math.max(1, deadline - Date.now())));
  }
}
