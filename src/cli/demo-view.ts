/** The demo's live view: what has landed in SQLite (never what the simulator says), for a terminal or a pipe. */
import type Database from 'better-sqlite3';
import { LAST_HEARD_SQL } from '../store/inventory.js';
import { ago, table } from './format.js';

const MODES: Record<string, string> = {
  '0': 'Unknown',
  '1': 'Disconnected',
  '2': 'Car connected',
  '3': 'Charging',
  '5': 'Finished',
};

export interface ChargerLine {
  id: string;
  device_id: string | null;
  name: string | null;
  mode: string | null;
  power: string | null;
  energy: string | null;
  last: string | null;
  source: string | null;
}

export interface SessionLine {
  id: string;
  device_id: string | null;
  ended_at: string | null;
  energy_kwh: number | null;
  ocmf_signed: number;
  signature_valid: number | null;
  source: string;
}

export interface CommandLine {
  id: number;
  target: string;
  action: string;
  requested_by: string | null;
  status: string;
  outcome: string | null;
  detail: string | null;
}

export interface ViewData {
  installations: number;
  connected: number;
  chargers: ChargerLine[];
  withState: number;
  inventoryAt: string | null;
  callsLastMinute: number;
  minuteLimit: number;
  listsUsed: number;
  listsLimit: number;
  rejected: number;
  /** The last completed sessions, newest first. */
  sessions: SessionLine[];
  /** The last commands consumers asked for (CONTRACT §10), newest first. */
  commands: CommandLine[];
}

/** The view of the main database, and of the control database when there is one yet. */
export function readView(db: Database.Database, control?: Database.Database): ViewData {
  const count = (sql: string, ...p: unknown[]) =>
    (db.prepare(sql).get(...p) as { n: number } | undefined)?.n ?? 0;
  const chargers = db
    .prepare(
      `SELECT c.id, c.device_id, c.name,
         (SELECT value FROM charger_state WHERE charger_id = c.id AND state_id = 710) AS mode,
         (SELECT value FROM charger_state WHERE charger_id = c.id AND state_id = 513) AS power,
         (SELECT value FROM charger_state WHERE charger_id = c.id AND state_id = 553) AS energy,
         ${LAST_HEARD_SQL} AS last,
         (SELECT source FROM charger_state WHERE charger_id = c.id ORDER BY received_at DESC LIMIT 1) AS source
       FROM chargers c WHERE c.active = 1 ORDER BY c.device_id`,
    )
    .all() as ChargerLine[];
  // The budget as the `api_budget` view tells every consumer (one definition of "used" per window).
  const budget = (grp: string, seconds: number) =>
    (db
      .prepare(
        `SELECT used, "limit" FROM api_budget WHERE "group" = ? AND kind = 'sliding' AND window_seconds = ?`,
      )
      .get(grp, seconds) as { used: number; limit: number } | undefined) ?? { used: 0, limit: 0 };
  const minute = budget('global', 60);
  const lists = budget('lists', 1800);
  return {
    installations: count('SELECT count(*) AS n FROM installations WHERE active = 1'),
    connected: count("SELECT count(*) AS n FROM sync_status WHERE events = 'connected'"),
    chargers,
    withState: chargers.filter((c) => c.last).length,
    inventoryAt:
      (db.prepare('SELECT inventory_refreshed_at AS t FROM daemon').get() as { t: string | null } | undefined)
        ?.t ?? null,
    callsLastMinute: minute.used,
    minuteLimit: minute.limit,
    listsUsed: lists.used,
    listsLimit: lists.limit,
    rejected: count('SELECT count(*) AS n FROM api_requests WHERE status = 429'),
    sessions: db
      .prepare(
        `SELECT id, device_id, ended_at, energy_kwh, ocmf_signed, signature_valid, source FROM charging_sessions
         ORDER BY ended_at DESC LIMIT 5`,
      )
      .all() as SessionLine[],
    commands: control
      ? (control
          .prepare(
            'SELECT id, target, action, requested_by, status, outcome, detail FROM commands ORDER BY id DESC LIMIT 3',
          )
          .all() as CommandLine[])
      : [],
  };
}

/** A command as one phrase: `#1 pause ZAP000001 (asked by demo): confirmed`. */
export function commandText(c: CommandLine): string {
  const state = c.outcome ? `${c.outcome}${c.detail ? ` (${c.detail})` : ''}` : c.status;
  return `#${c.id} ${c.action} ${c.target}${c.requested_by ? ` (asked by ${c.requested_by})` : ''}: ${state}`;
}

export function modeName(mode: string | null): string {
  return mode === null ? '-' : (MODES[mode] ?? `mode ${mode}`);
}

export function power(w: string | null): string {
  return w === null ? '-' : `${(Number(w) / 1000).toFixed(1)} kW`;
}

export function energy(kwh: string | null): string {
  return kwh === null ? '-' : `${Number(kwh).toFixed(3)} kWh`;
}

export function summaryLine(v: ViewData): string {
  return `API: ${v.callsLastMinute} calls in the last minute (budget ${v.minuteLimit}/min), lists ${v.listsUsed}/${v.listsLimit} per 30 min, ${v.rejected} answered 429`;
}

export function progressLine(v: ViewData): string {
  const inv = v.inventoryAt
    ? `${v.installations} installations, ${v.chargers.length} chargers`
    : 'reading the inventory…';
  return `inventory: ${inv} · live events: ${v.connected}/${v.installations} connected · state: ${v.withState}/${v.chargers.length} chargers`;
}

/** The full screen for a terminal. */
export function screen(v: ViewData, dbPath: string, now: number): string {
  const rows = v.chargers.map((c) => [
    c.device_id ?? c.id.slice(0, 8),
    c.name ?? '',
    modeName(c.mode),
    power(c.power),
    energy(c.energy),
    c.last ? `${ago(c.last, now)} (${c.source})` : 'no state yet',
  ]);
  return [
    `zaptec-sync demo — a simulated Zaptec cloud on 127.0.0.1; everything below is read from ${dbPath}. Ctrl-C stops.`,
    '',
    progressLine(v),
    summaryLine(v),
    '',
    table([['serial', 'name', 'mode', 'power', 'session', 'last change'], ...rows]),
    '',
    v.sessions.length === 0
      ? 'completed sessions: none yet'
      : table([
          ['completed session', 'charger', 'energy', 'OCMF', 'from'],
          ...v.sessions.map((x) => [
            x.ended_at ? ago(x.ended_at, now) : '-',
            x.device_id ?? '-',
            x.energy_kwh === null ? '-' : `${x.energy_kwh.toFixed(3)} kWh`,
            signature(x),
            x.source,
          ]),
        ]),
    ...(v.commands.length > 0 ? ['', 'commands', ...v.commands.map((c) => `  ${commandText(c)}`)] : []),
  ].join('\n');
}

function signature(x: SessionLine): string {
  if (x.ocmf_signed !== 1) return 'unsigned';
  return x.signature_valid === 1 ? 'signed, valid' : x.signature_valid === 0 ? 'signed, INVALID' : 'signed';
}

/** For a pipe: one line per charger whose mode, power or session energy changed since `before`. */
export function changedLines(before: Map<string, string>, v: ViewData, now: number): string[] {
  const out: string[] = [];
  const time = new Date(now).toISOString().slice(11, 19);
  for (const c of v.chargers) {
    const text = `${modeName(c.mode)}, ${power(c.power)}, ${energy(c.energy)}`;
    if (before.get(c.id) !== text && c.last) out.push(`${time} ${c.device_id ?? c.id} ${text}`);
    before.set(c.id, text);
  }
  for (const x of [...v.sessions].reverse()) {
    if (before.has(`session:${x.id}`)) continue;
    before.set(`session:${x.id}`, '');
    out.push(
      `${time} ${x.device_id ?? '-'} session completed: ${energy(String(x.energy_kwh))}, ${signature(x)} (${x.source})`,
    );
  }
  for (const c of [...v.commands].reverse()) {
    const text = commandText(c);
    if (before.get(`command:${c.id}`) === text) continue;
    before.set(`command:${c.id}`, text);
    out.push(`${time} command ${text}`);
  }
  return out;
}
