/**
 * What `refresh`, `command` and `current` share: a row written into the control database for the running daemon
 * (CONTRACT §10), and with `--wait`, waiting for its answer.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { controlDatabasePath, databasePath, environment, postgresLocation } from '../config.js';
import { describeError } from '../log.js';
import { openControl, prepareControl } from '../store/control.js';
import type { DaemonRow } from '../store/daemon-row.js';
import { isSetupFault } from '../store/database.js';
import { HEARTBEAT_STALE_MS } from '../store/health.js';
import { openReader, type Sql, sqliteSql } from '../store/reader.js';
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

/** Where a consumer's request goes: the control database's connection, or the PostgreSQL schema. */
export interface Asking {
  control: Sql;
  close(): Promise<void>;
}

/**
 * Opens where requests go for the configured store (the SQLite control file is created when the daemon has
 * not yet), after saying when no daemon runs to answer. A number is the exit status when there is no store.
 */
export async function openAsking(command: string, envFile: string | undefined): Promise<Asking | number> {
  const env = environment(envFile);
  if (postgresLocation(env)) {
    const reader = await openReader(env, command);
    if (!reader) return EXIT_NO_DATABASE;
    if (!(await daemonRunning(reader)))
      process.stderr.write(
        `zaptec-sync ${command}: no daemon is running on ${reader.where}; the request waits until one starts\n`,
      );
    return { control: reader, close: () => reader.close() };
  }
  const path = databasePath(env);
  if (!existsSync(path)) {
    process.stderr.write(`zaptec-sync ${command}: no database at ${path} (has the daemon run?)\n`);
    return EXIT_NO_DATABASE;
  }
  const reader = await openReader(env, command);
  if (!reader) return EXIT_NO_DATABASE;
  try {
    if (!(await daemonRunning(reader)))
      process.stderr.write(
        `zaptec-sync ${command}: no daemon is running on ${path}; the request waits until one starts\n`,
      );
  } finally {
    await reader.close();
  }
  const controlPath = controlDatabasePath(env);
  try {
    if (!existsSync(controlPath)) prepareControl(controlPath);
    // Asking is writing (the file, and its directory for the journal): found out now, in one line a person can
    // act on, not at the insert.
    accessSync(controlPath, constants.W_OK);
    accessSync(dirname(controlPath), constants.W_OK);
    const control = openControl(controlPath);
    return {
      control: sqliteSql(control),
      close: async () => {
        control.close();
      },
    };
  } catch (err) {
    if (!isSetupFault(err)) throw err;
    process.stderr.write(
      `zaptec-sync ${command}: this user may not write the control database ${controlPath}, where requests go (${(err as { code?: string }).code ?? describeError(err)}); ask to be in its group (zaptec-sync-control under systemd)\n`,
    );
    return EXIT_CONFIG;
  }
}

async function daemonRunning(db: Sql): Promise<boolean> {
  const row = await db.get<DaemonRow>('SELECT * FROM daemon WHERE id = 1');
  if (!row?.heartbeat_at || row.stopped_at) return false;
  return Date.now() - Date.parse(row.heartbeat_at) <= HEARTBEAT_STALE_MS;
}

/**
 * Polls `answer` until it returns an exit status, or `seconds` have passed (EXIT_WAIT_TIMEOUT, after one line
 * saying what got no answer).
 */
export async function waitForAnswer(
  command: string,
  what: string,
  seconds: number,
  answer: () => Promise<number | undefined>,
): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const code = await answer();
    if (code !== undefined) return code;
    if (Date.now() >= deadline) {
      process.stderr.write(`zaptec-sync ${command}: no answer for ${what} within ${seconds} s\n`);
      return EXIT_WAIT_TIMEOUT;
    }
    await delay(Math.min(WAIT_POLL_MS, Math.max(1, deadline - Date.now())));
  }
}
