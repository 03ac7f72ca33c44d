/**
 * `command <charger> pause|resume|restart|deauthorize [--wait <seconds>]` and `current <installation>
 * <amps>[,<amps>,<amps>] [--wait <seconds>]` (CONTRACT §1, §10): a `commands` row for the running daemon, with
 * the OS user as `requested_by`; with --wait, its outcome. Exit 0 confirmed or queued · 3 refused before
 * sending (commands off, unnecessary, superseded) · 4 unknown target · 5 timed out waiting (or sent and not
 * confirmed) · 6 rejected or failed by Zaptec · 2 no database.
 */
import { userInfo } from 'node:os';
import { type CommandOutcome, insertCommand, readCommand } from '../store/commands.js';
import { parseCommandArgs, UsageError } from './args.js';
import { openAsking, waitForAnswer, waitSeconds } from './ask.js';
import { EXIT_NOT_FOUND, EXIT_OK, EXIT_REFUSED, EXIT_REJECTED, EXIT_WAIT_TIMEOUT } from './exit-codes.js';

const CHARGER_ACTIONS = ['pause', 'resume', 'restart', 'deauthorize'];

const EXIT_BY_OUTCOME: Record<CommandOutcome, number> = {
  confirmed: EXIT_OK,
  unconfirmed: EXIT_WAIT_TIMEOUT,
  unnecessary: EXIT_REFUSED,
  superseded: EXIT_REFUSED,
  refused: EXIT_REFUSED,
  not_found: EXIT_NOT_FOUND,
  rejected: EXIT_REJECTED,
  failed: EXIT_REJECTED,
};

export async function commandCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { wait: { type: 'string' } }, 2);
  const [target, action] = positionals;
  if (!target || !action || !CHARGER_ACTIONS.includes(action))
    throw new UsageError(
      `usage: zaptec-sync command <charger> ${CHARGER_ACTIONS.join('|')} [--wait <seconds>]`,
    );
  return ask('command', { target, action, value: null }, waitSeconds(values.wait), envFile);
}

export async function currentCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { wait: { type: 'string' } }, 2);
  const [target, amps] = positionals;
  if (!target || !amps || !/^\d+(\.\d+)?(,\d+(\.\d+)?,\d+(\.\d+)?)?$/.test(amps))
    throw new UsageError(
      'usage: zaptec-sync current <installation> <amps>[,<amps>,<amps>] [--wait <seconds>]',
    );
  return ask(
    'current',
    { target, action: 'available_current', value: amps },
    waitSeconds(values.wait),
    envFile,
  );
}

async function ask(
  name: string,
  row: { target: string; action: string; value: string | null },
  wait: number | undefined,
  envFile: string | undefined,
): Promise<number> {
  const opened = await openAsking(name, envFile);
  if (typeof opened === 'number') return opened;
  const db = opened.control;
  try {
    const id = await insertCommand(db, { ...row, requestedBy: osUser() });
    const what = `${row.action}${row.value ? ` ${row.value}` : ''} ${row.target}`;
    if (wait === undefined) {
      process.stdout.write(`queued command ${id}: ${what}\n`);
      return EXIT_OK;
    }
    return await waitForAnswer(name, `command ${id} (${what})`, wait, async () => {
      const r = await readCommand(db, id);
      if (!r?.outcome) return undefined;
      process.stdout.write(`${r.outcome}${r.detail ? `: ${r.detail}` : ''}\n`);
      return EXIT_BY_OUTCOME[r.outcome];
    });
  } finally {
    await opened.close();
  }
}

/** Who asked: the OS user running the command. */
function osUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null; // a uid without a passwd entry (a container): the row says nobody in particular
  }
}
