import { environment } from '../config.js';
import { findCharger, openReader } from '../store/reader.js';
import { parseCommandArgs, UsageError } from './args.js';
import { EXIT_NO_DATABASE, EXIT_NOT_FOUND } from './exit-codes.js';
import { table } from './format.js';

interface StateRow {
  state_id: number;
  state_name: string | null;
  value: string | null;
  /** What the value means, from /api/constants (710 3: Connected_Charging), where it says. */
  meaning: string | null;
  observed_at: string;
  received_at: string;
  source: string;
}

/** `state <charger> [--json]`: the current state of one charger, by id or serial; 4 when unknown. */
export async function stateCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } }, 1);
  const wanted = positionals[0];
  if (!wanted) throw new UsageError('which charger? give its id or serial, e.g. zaptec-sync state ZAP049387');
  const db = await openReader(environment(envFile), 'state');
  if (!db) return EXIT_NO_DATABASE;
  try {
    // A database of an older schema (read-only here) has no state_values yet.
    const hasValues = await db.has('state_values');
    const meaning = hasValues ? 'v.meaning' : 'NULL AS meaning';
    const meaningJoin = hasValues
      ? ' LEFT JOIN state_values v ON v.state_id = s.state_id AND v.value = s.value'
      : '';
    const charger = await findCharger(db, wanted);
    const id = charger?.id ?? wanted.toLowerCase();
    const states = await db.all<StateRow>(
      `SELECT s.state_id, s.state_name, s.value, ${meaning}, s.observed_at, s.received_at, s.source
       FROM charger_state s${meaningJoin}
       WHERE s.charger_id = ? ORDER BY s.state_id`,
      id,
    );
    if (!charger && states.length === 0) {
      process.stderr.write(`zaptec-sync state: unknown charger ${wanted}\n`);
      return EXIT_NOT_FOUND;
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ charger: charger ?? { id }, states })}\n`);
      return 0;
    }
    const head = charger
      ? `${charger.device_id ?? '?'}  ${charger.name ?? ''}  (id ${charger.id}, installation ${charger.installation_id ?? '-'}${charger.active ? '' : ', no longer accessible'})`
      : `${id}  (not in the inventory yet)`;
    process.stdout.write(`${head}\n`);
    if (states.length === 0) process.stdout.write('no state observed yet\n');
    else {
      process.stdout.write(
        `${table([
          ['id', 'name', 'value', 'observed at', 'source'],
          ...states.map((s) => [
            String(s.state_id),
            s.state_name ?? '',
            s.value === null ? '(none)' : `${oneLine(s.value)}${s.meaning ? ` (${s.meaning})` : ''}`,
            s.observed_at,
            s.source,
          ]),
        ])}\n`,
      );
    }
    return 0;
  } finally {
    await db.close();
  }
}

function oneLine(value: string): string {
  const flat = value.replace(/\s+/g, ' ');
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}
