/**
 * Completed charging sessions (CONTRACT §8): one row per Zaptec session id, merged from the observation 723
 * `CompletedSession` (bus or state read, written in the observation's own transaction) and charge-history
 * items. What one source lacks is filled from the other; charge history owns the fields only it has (token,
 * user, flags); a replay changes nothing (not even `updated_at`). Personal data (the user's name and e-mail)
 * only with `personalData`, and then only in its two columns and `data`.
 */
import type { Logger } from '../log.js';
import { isoMs, parseZaptecTime } from '../time.js';
import { meterReadings, OcmfError, type ParsedOcmf, parseOcmf, verifyOcmf } from '../zaptec/ocmf.js';
import type { Db } from './database.js';

export type SessionSource = 'event' | 'poll' | 'history';

/** A charge-history item (`SessionListModel`), as far as it is read; everything else stays in `data`. */
export interface HistoryItem {
  Id?: string | null;
  ChargerId?: string | null;
  DeviceId?: string | null;
  StartDateTime?: string | null;
  EndDateTime?: string | null;
  Energy?: number | null;
  CommitMetadata?: number | null;
  UserId?: string | null;
  UserFullName?: string | null;
  UserEmail?: string | null;
  TokenName?: string | null;
  ExternallyEnded?: boolean | null;
  SignedSession?: string | null;
  EnergyDetails?: { Timestamp?: string | null; Energy?: number | null }[] | null;
  [key: string]: unknown;
}

interface Row {
  id: string;
  charger_id: string;
  installation_id: string | null;
  device_id: string | null;
  started_at: string | null;
  ended_at: string | null;
  energy_kwh: number | null;
  authentication_code: string | null;
  token_name: string | null;
  user_id: string | null;
  stopped_by_rfid: number | null;
  reliable_clock: number | null;
  externally_ended: number | null;
  commit_metadata: number | null;
  ocmf: string | null;
  ocmf_signed: number;
  signature_valid: number | null;
  meter_start_kwh: number | null;
  meter_end_kwh: number | null;
  source: SessionSource;
  first_seen_at: string;
  updated_at: string;
  data: string | null;
  user_full_name: string | null;
  user_email: string | null;
  data_source: SessionSource | null;
}

type Incoming = Partial<Row> & Pick<Row, 'id' | 'charger_id'>;

/** Columns only charge history has: a later pass may change them (a session voided, a token renamed). */
const HISTORY_OWNS = ['token_name', 'user_id', 'externally_ended', 'commit_metadata'] as const;
const PERSONAL = ['user_full_name', 'user_email'] as const;
/** Charge-history keys that are personal data (`UserUserName` is an alias of the e-mail). */
const PERSONAL_KEYS = ['UserFullName', 'UserEmail', 'UserUserName'];
/** The columns of CONTRACT §8, in its order. */
export const SESSION_COLUMNS = [
  'id',
  'charger_id',
  'installation_id',
  'device_id',
  'started_at',
  'ended_at',
  'energy_kwh',
  'authentication_code',
  'token_name',
  'user_id',
  'stopped_by_rfid',
  'reliable_clock',
  'externally_ended',
  'commit_metadata',
  'ocmf',
  'ocmf_signed',
  'signature_valid',
  'meter_start_kwh',
  'meter_end_kwh',
  'source',
  'first_seen_at',
  'updated_at',
  'data',
  'user_full_name',
  'user_email',
] as const satisfies readonly (keyof Row)[];
const COLUMNS: (keyof Row)[] = [...SESSION_COLUMNS, 'data_source'];
/** Bad inputs remembered so each is logged once; forgotten wholesale past this many. */
const WARNED_MAX = 10_000;
/** `Energy` and E − B may differ by rounding (Zaptec floors or ceils to 3 decimals). */
const ENERGY_TOLERANCE_KWH = 0.0015;

export interface SessionStoreOptions {
  personalData: boolean;
  log: Logger;
  now: () => number;
}

export class SessionStore {
  readonly #db: Db;
  readonly #o: SessionStoreOptions;
  readonly #get;
  readonly #insert;
  readonly #update;
  readonly #charger;
  readonly #key;
  readonly #energy;
  readonly #unverified;
  readonly #pass;
  readonly #passDone;
  readonly #gapPass;
  readonly #lastEnd;
  readonly #warned = new Set<string>();

  constructor(db: Db, options: SessionStoreOptions) {
    this.#db = db;
    this.#o = options;
    this.#get = db.prepare<[string], Row>('SELECT * FROM charging_sessions WHERE id = ?');
    this.#insert = db.prepare(
      `INSERT INTO charging_sessions (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
    );
    this.#update = db.prepare(
      `UPDATE charging_sessions SET ${COLUMNS.filter((c) => c !== 'id')
        .map((c) => `${c} = @${c}`)
        .join(', ')} WHERE id = @id`,
    );
    this.#charger = db.prepare<[string], { installation_id: string | null; device_id: string | null }>(
      'SELECT installation_id, device_id FROM chargers WHERE id = ?',
    );
    this.#key = db.prepare<[string], { value: string | null }>(
      'SELECT value FROM charger_state WHERE charger_id = ? AND state_id = 981',
    );
    this.#energy = db.prepare(
      `INSERT INTO charging_session_energy (session_id, at, energy_kwh) VALUES (?, ?, ?)
       ON CONFLICT (session_id, at) DO UPDATE SET energy_kwh = excluded.energy_kwh
       WHERE energy_kwh IS NOT excluded.energy_kwh`,
    );
    this.#unverified = db.prepare<[string], Row>(
      'SELECT * FROM charging_sessions WHERE charger_id = ? AND ocmf_signed = 1 AND signature_valid IS NULL',
    );
    this.#pass = db.prepare<
      [string],
      { last_read_at: string; read_until: string; gap_read_at: string | null }
    >('SELECT last_read_at, read_until, gap_read_at FROM charge_history_passes WHERE installation_id = ?');
    this.#gapPass = db.prepare('UPDATE charge_history_passes SET gap_read_at = ? WHERE installation_id = ?');
    this.#passDone = db.prepare(
      `INSERT INTO charge_history_passes (installation_id, last_read_at, read_until) VALUES (?, ?, ?)
       ON CONFLICT (installation_id) DO UPDATE SET last_read_at = excluded.last_read_at, read_until = excluded.read_until`,
    );
    this.#lastEnd = db.prepare<[string], { at: string | null }>(
      'SELECT max(ended_at) AS at FROM charging_sessions WHERE installation_id = ?',
    );
  }

  /**
   * A 723 `CompletedSession` observation (inside the observation's transaction). A value that is not the
   * expected JSON is logged once and gives no row (there is no session id to key it by).
   */
  completed(chargerId: string, value: string | null, source: 'event' | 'poll'): void {
    if (!value?.trim()) return;
    let v: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(value);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      v = parsed as Record<string, unknown>;
    } catch (err) {
      this.#warn(
        `723:${chargerId}:${value.length}`,
        { chargerId },
        `a CompletedSession (723) that is not JSON (${(err as Error).message}): kept as an observation, no session row`,
      );
      return;
    }
    const id = str(v.SessionId)?.toLowerCase();
    if (!id) {
      this.#warn(
        `723:${chargerId}:no-id`,
        { chargerId },
        'a CompletedSession (723) without a SessionId: kept as an observation, no session row',
      );
      return;
    }
    const charger = this.#charger.get(chargerId);
    this.#merge(
      {
        id,
        charger_id: chargerId,
        installation_id: charger?.installation_id ?? null,
        device_id: charger?.device_id ?? null,
        started_at: time(v.StartDateTime),
        ended_at: time(v.EndDateTime),
        energy_kwh: num(v.Energy),
        authentication_code: str(v.AuthenticationCode) ?? null,
        stopped_by_rfid: bool(v.StoppedByRFID),
        reliable_clock: bool(v.ReliableClock),
        ocmf: nonEmpty(v.SignedSession),
        data: value,
      },
      source,
    );
  }

  /** A charge-history item of an installation; runs in its own transaction unless inside one. */
  history(item: HistoryItem, installationId: string): void {
    // An item without `Id` is still keyed when its OCMF names the session (`ZS`, Pro MID and Go+).
    const id = (str(item.Id) ?? sessionIdOf(item.SignedSession))?.toLowerCase();
    const chargerId = str(item.ChargerId)?.toLowerCase();
    if (!id || !chargerId) {
      this.#warn(
        `history:${installationId}:no-id`,
        { installationId },
        'a charge-history item without Id or ChargerId: skipped',
      );
      return;
    }
    const personal = this.#o.personalData;
    const data = personal
      ? item
      : Object.fromEntries(Object.entries(item).filter(([k]) => !PERSONAL_KEYS.includes(k)));
    const flags = num(item.CommitMetadata);
    this.#db.transaction(() => {
      this.#merge(
        {
          id,
          charger_id: chargerId,
          installation_id: installationId.toLowerCase(),
          device_id: str(item.DeviceId) ?? null,
          started_at: time(item.StartDateTime),
          ended_at: time(item.EndDateTime),
          energy_kwh: num(item.Energy),
          token_name: str(item.TokenName) ?? null,
          user_id: str(item.UserId)?.toLowerCase() ?? null,
          externally_ended: bool(item.ExternallyEnded),
          commit_metadata: flags,
          stopped_by_rfid: flags === null ? null : flags & 8 ? 1 : 0,
          reliable_clock: flags === null ? null : flags & 4 ? 1 : 0,
          ocmf: nonEmpty(item.SignedSession),
          data: JSON.stringify(data),
          user_full_name: personal ? (str(item.UserFullName) ?? null) : null,
          user_email: personal ? (str(item.UserEmail) ?? null) : null,
        },
        'history',
      );
      for (const d of item.EnergyDetails ?? []) {
        const at = time(d?.Timestamp);
        const kwh = num(d?.Energy);
        if (at !== null && kwh !== null) this.#energy.run(id, at, kwh);
      }
    })();
  }

  /** The last completed charge-history pass of an installation. */
  pass(
    installationId: string,
  ): { lastReadAt: number; readUntil: number; gapReadAt: number | undefined } | undefined {
    const row = this.#pass.get(installationId);
    return row
      ? {
          lastReadAt: Date.parse(row.last_read_at),
          readUntil: Date.parse(row.read_until),
          gapReadAt: row.gap_read_at ? Date.parse(row.gap_read_at) : undefined,
        }
      : undefined;
  }

  /** A pass after a restart or a live-event gap begins (their spacing holds across restarts). */
  gapPassBegins(installationId: string, at: number): void {
    this.#gapPass.run(isoMs(at), installationId);
  }

  passDone(installationId: string, at: number, readUntil: number): void {
    this.#passDone.run(installationId, isoMs(at), isoMs(readUntil));
  }

  /** The end of the installation's last known session (epoch ms). */
  lastEnd(installationId: string): number | undefined {
    const row = this.#lastEnd.get(installationId);
    return row?.at ? Date.parse(row.at) : undefined;
  }

  /** A charger's 981 `MIDPublicKey` arrived: its signed sessions that waited for a key are verified now. */
  keyArrived(chargerId: string, key: string | null): void {
    if (!key?.trim()) return;
    for (const row of this.#unverified.all(chargerId)) {
      const valid = this.#verify(row, key);
      if (valid === undefined) continue;
      this.#update.run({ ...row, signature_valid: valid ? 1 : 0, updated_at: isoMs(this.#o.now()) });
    }
  }

  #merge(incoming: Incoming, source: SessionSource): void {
    const existing = this.#get.get(incoming.id);
    const base: Row = existing ?? {
      ...(Object.fromEntries(COLUMNS.map((c) => [c, null])) as unknown as Row),
      ocmf_signed: 0,
      source,
      first_seen_at: isoMs(this.#o.now()),
    };
    const merged: Row = { ...base };
    for (const c of COLUMNS) {
      const v = incoming[c];
      if (v === undefined || c === 'data') continue;
      // Personal data follows the setting of the last charge-history pass: off clears what an earlier one kept.
      const personal = source === 'history' && (PERSONAL as readonly string[]).includes(c);
      if (v === null && !personal) continue;
      const owned = source === 'history' && (HISTORY_OWNS as readonly string[]).includes(c);
      if (merged[c] === null || owned || personal) (merged as unknown as Record<string, unknown>)[c] = v;
    }
    // `data` is the last source's object; charge history outranks a 723 (it has more), so a 723 replayed
    // after it changes nothing.
    const ranked = source === 'history' || merged.data_source !== 'history';
    if (incoming.data && incoming.data !== merged.data && ranked) {
      merged.data = incoming.data;
      merged.data_source = source;
    }
    if (merged.ocmf !== base.ocmf || existing === undefined || base.signature_valid === null)
      this.#ocmf(merged, base);
    if (existing && COLUMNS.every((c) => merged[c] === existing[c])) return;
    merged.updated_at = isoMs(this.#o.now());
    if (existing) this.#update.run(merged);
    else this.#insert.run(merged);
  }

  /** OCMF-derived columns: signed, readings, verification against the charger's 981 key; checks logged once. */
  #ocmf(row: Row, before: Row): void {
    if (!row.ocmf) return;
    let o: ParsedOcmf;
    try {
      o = parseOcmf(row.ocmf);
    } catch (err) {
      row.ocmf_signed = row.ocmf.split('|').length === 3 ? 1 : 0;
      this.#warn(
        `ocmf:${row.id}`,
        { sessionId: row.id },
        `session's OCMF does not parse (${err instanceof OcmfError ? err.message : String(err)}): kept verbatim, not verified`,
      );
      return;
    }
    row.ocmf_signed = o.signature ? 1 : 0;
    const { start, end } = meterReadings(o);
    row.meter_start_kwh ??= start ?? null;
    row.meter_end_kwh ??= end ?? null;
    if (row.signature_valid === null || row.ocmf !== before.ocmf) {
      const valid = this.#verify(row, undefined, o);
      row.signature_valid = valid === undefined ? null : valid ? 1 : 0;
      if (valid === false)
        this.#warn(
          `signature:${row.id}`,
          { sessionId: row.id, chargerId: row.charger_id },
          "session's OCMF signature does not verify against the charger's public key (981): kept, signature_valid 0",
        );
    }
    if (o.serial && row.device_id && o.serial !== row.device_id)
      this.#warn(
        `gs:${row.id}`,
        { sessionId: row.id },
        `session's OCMF names charger ${o.serial}, not ${row.device_id}: kept`,
      );
    if (
      start !== undefined &&
      end !== undefined &&
      row.energy_kwh !== null &&
      Math.abs(end - start - row.energy_kwh) > ENERGY_TOLERANCE_KWH
    )
      this.#warn(
        `energy:${row.id}`,
        { sessionId: row.id },
        `session's energy ${row.energy_kwh} kWh differs from its OCMF readings (${(end - start).toFixed(3)} kWh): kept`,
      );
  }

  #verify(row: Row, key?: string, parsed?: ParsedOcmf): boolean | undefined {
    if (!row.ocmf) return undefined;
    try {
      return verifyOcmf(parsed ?? parseOcmf(row.ocmf), key ?? this.#key.get(row.charger_id)?.value);
    } catch {
      return undefined;
    }
  }

  #warn(key: string, fields: Record<string, string>, message: string): void {
    if (this.#warned.has(key)) return;
    if (this.#warned.size >= WARNED_MAX) this.#warned.clear();
    this.#warned.add(key);
    this.#o.log.warn(fields, message);
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function nonEmpty(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function bool(v: unknown): number | null {
  return typeof v === 'boolean' ? (v ? 1 : 0) : null;
}

function time(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const t = parseZaptecTime(v);
  return t === undefined ? null : isoMs(t);
}

function sessionIdOf(ocmf: unknown): string | undefined {
  if (typeof ocmf !== 'string' || !ocmf) return undefined;
  try {
    return str(parseOcmf(ocmf).payload.ZS);
  } catch {
    return undefined;
  }
}
