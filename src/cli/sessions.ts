/**
 * `sessions [--since <date>] [--until <date>] [--charger <id or serial>] [--installation <id>]
 * [--format table|csv|json]`: completed charging sessions from `charging_sessions` (CONTRACT §1, §8), newest
 * last, chosen by their end: `--since` inclusive, `--until` exclusive, so that consecutive months never
 * overlap. A date alone is midnight UTC; a time without an offset is UTC, as Zaptec writes them.
 * Exit 0 · 2 no database · 4 unknown charger or installation.
 */
import { environment } from '../config.js';
import { findCharger, openReader } from '../store/reader.js';
import { SESSION_COLUMNS } from '../store/sessions.js';
import { isoMs, parseZaptecTime } from '../time.js';
import { parseCommandArgs, UsageError } from './args.js';
import { EXIT_NO_DATABASE, EXIT_NOT_FOUND } from './exit-codes.js';
import { table } from './format.js';

/** The contract's columns in their order (§8); `data` only in JSON, where it is an object, not a string. */
const COLUMNS = SESSION_COLUMNS.filter((c) => c !== 'data');

type SessionRow = Record<(typeof SESSION_COLUMNS)[number], string | number | null>;

export async function sessionsCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values } = parseCommandArgs(
    args,
    {
      since: { type: 'string' },
      until: { type: 'string' },
      charger: { type: 'string' },
      installation: { type: 'string' },
      format: { type: 'string', default: 'table' },
    },
    0,
  );
  const format = values.format;
  if (format !== 'table' && format !== 'csv' && format !== 'json')
    throw new UsageError('--format must be table, csv or json');
  const since = values.since === undefined ? undefined : when('since', values.since);
  const until = values.until === undefined ? undefined : when('until', values.until);
  if (since !== undefined && until !== undefined && since >= until)
    throw new UsageError(`--since (${since}) must be before --until (${until})`);
  const db = await openReader(environment(envFile), 'sessions');
  if (!db) return EXIT_NO_DATABASE;
  try {
    const where: string[] = [];
    const params: string[] = [];
    if (values.charger !== undefined) {
      const wanted = values.charger;
      const id =
        (await findCharger(db, wanted))?.id ??
        (
          await db.get<{ charger_id: string }>(
            'SELECT charger_id FROM charging_sessions WHERE charger_id = lower(?) OR lower(device_id) = lower(?) LIMIT 1',
            wanted,
            wanted,
          )
        )?.charger_id;
      if (!id) {
        process.stderr.write(`zaptec-sync sessions: unknown charger ${wanted}\n`);
        return EXIT_NOT_FOUND;
      }
      where.push('charger_id = ?');
      params.push(id.toLowerCase());
    }
    if (values.installation !== undefined) {
      const wanted = values.installation.toLowerCase();
      const known = (await db.get<{ n: number }>(
        `SELECT (SELECT count(*) FROM installations WHERE id = ?)
              + (SELECT count(*) FROM charging_sessions WHERE installation_id = ?) AS n`,
        wanted,
        wanted,
      ))!.n;
      if (known === 0) {
        process.stderr.write(`zaptec-sync sessions: unknown installation ${values.installation}\n`);
        return EXIT_NOT_FOUND;
      }
      where.push('installation_id = ?');
      params.push(wanted);
    }
    if (since !== undefined) {
      where.push('ended_at >= ?');
      params.push(since);
    }
    if (until !== undefined) {
      where.push('ended_at < ?');
      params.push(until);
    }
    const rows = await db.all<SessionRow>(
      `SELECT ${COLUMNS.join(', ')}, data FROM charging_sessions
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ended_at, id`,
      ...params,
    );
    process.stdout.write(format === 'json' ? json(rows) : format === 'csv' ? csv(rows) : text(rows));
    return 0;
  } finally {
    await db.close();
  }
}

/** A date (midnight UTC) or a date and time (UTC unless it has an offset), as ISO-8601 UTC. */
function when(option: string, text: string): string {
  const t = /^\d{4}-\d\d-\d\d$/.test(text) ? parseZaptecTime(`${text}T00:00:00Z`) : parseZaptecTime(text);
  if (t === undefined)
    throw new UsageError(`--${option} must be a date (2026-11-01) or a date and time (2026-11-01T06:00:00Z)`);
  return isoMs(t);
}

function json(rows: SessionRow[]): string {
  const out = rows.map((r) => {
    let data: unknown = r.data;
    try {
      data = typeof r.data === 'string' ? JSON.parse(r.data) : null;
    } catch {}
    return { ...r, data };
  });
  return `${JSON.stringify(out, null, 1)}\n`;
}

/**
 * RFC 4180: a header line, fields quoted where they hold a comma, quote or line break. A text field that a
 * spreadsheet would run as a formula (it begins with =, +, -, @, a tab or a carriage return) gets a leading
 * `'` (CONTRACT §7 "Exports", OWASP's advice on CSV injection); numbers are written as numbers.
 */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  const s = typeof v === 'number' ? String(v) : /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csv(rows: SessionRow[]): string {
  const lines = [COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

function text(rows: SessionRow[]): string {
  if (rows.length === 0) return 'no completed sessions\n';
  const kwh = (v: string | number | null) => (typeof v === 'number' ? v.toFixed(3) : '');
  const minutes = (r: SessionRow) => {
    const a = Date.parse(String(r.started_at));
    const b = Date.parse(String(r.ended_at));
    return Number.isFinite(a) && Number.isFinite(b) ? `${Math.round((b - a) / 60_000)} min` : '';
  };
  const signature = (r: SessionRow) =>
    r.ocmf_signed !== 1
      ? r.ocmf
        ? 'unsigned'
        : ''
      : r.signature_valid === 1
        ? 'valid'
        : r.signature_valid === 0
          ? 'INVALID'
          : 'not verified';
  const total = rows.reduce((s, r) => s + (typeof r.energy_kwh === 'number' ? r.energy_kwh : 0), 0);
  return `${table([
    ['ended (UTC)', 'charger', 'kWh', 'duration', 'authorised by', 'OCMF', 'source'],
    ...rows.map((r) => [
      String(r.ended_at ?? '')
        .replace('T', ' ')
        .slice(0, 19),
      String(r.device_id ?? r.charger_id),
      kwh(r.energy_kwh),
      minutes(r),
      String(r.token_name ?? r.authentication_code ?? ''),
      signature(r),
      String(r.source),
    ]),
  ])}\n${rows.length} session${rows.length === 1 ? '' : 's'}, ${total.toFixed(3)} kWh\n`;
}
