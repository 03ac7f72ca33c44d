/**
 * Typed Zaptec endpoints (zaptec-api.md §2) over the budgeted client. Bad items are logged once and
 * skipped; the rest of the page is kept. `/state` sits behind a 15 s cache with single-flight, and the
 * 15 s rule holds across restarts (`state_reads`).
 */
import type { z } from 'zod';
import type { HttpClient, HttpResponse } from '../http/client.js';
import { HttpStatusError, RateLimitedError } from '../http/errors.js';
import type { Logger } from '../log.js';
import type { BudgetLedger } from '../store/budget-ledger.js';
import type { Clock } from '../time.js';
import type { TokenSource } from './auth.js';
import {
  type ApiObservation,
  type Charger,
  type ConnectionDetails,
  type Constants,
  chargeHistoryItemSchema,
  chargerSchema,
  connectionDetailsSchema,
  constantsSchema,
  type Installation,
  installationSchema,
  observationSchema,
  pageSchema,
} from './schemas.js';

/** Zaptec caches `/api/chargers/{id}/state` for 15 s: reading sooner only returns the same answer. */
export const STATE_CACHE_MS = 15_000;
/**
 * The least time between two reads of one charger: the 15 s cache plus 250 ms, because a read's time is
 * recorded when it is admitted and the next one may travel faster than it did (the guard the budget
 * windows keep too).
 */
export const STATE_READ_SPACING_MS = STATE_CACHE_MS + 250;
/** Items per page of the list endpoints (stekker's value; fewer pages = fewer list calls). */
export const PAGE_SIZE = 100;

export interface CallOptions {
  deadline?: number;
  signal?: AbortSignal;
}

/** Zaptec's answer to a command: the status, and the `Code`/`Details` of an error body (528, 527, …). */
export interface WriteAnswer {
  status: number;
  code: number | undefined;
  details: string | undefined;
}

export class PayloadError extends Error {
  override name = 'PayloadError';
}

export class ZaptecApi {
  readonly #http: HttpClient;
  readonly #tokens: TokenSource;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #stateCache = new Map<string, { at: number; data: ApiObservation[] }>();
  readonly #stateInflight = new Map<string, Promise<ApiObservation[]>>();
  readonly #ledger: BudgetLedger;
  readonly #reported = new Set<string>();

  constructor(http: HttpClient, tokens: TokenSource, ledger: BudgetLedger, clock: Clock, log: Logger) {
    this.#http = http;
    this.#tokens = tokens;
    this.#ledger = ledger;
    this.#clock = clock;
    this.#log = log;
  }

  /** An authenticated GET; one new token and one more try on 401. Returns undefined for 204. */
  async #get(
    path: string,
    query: Record<string, string | number> | undefined,
    o: CallOptions,
    onAdmit?: (at: number) => void,
  ): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.#tokens.token(o);
      const res = await this.#http.request({
        method: 'GET',
        path,
        query,
        headers: { authorization: `Bearer ${token}` },
        ...o,
        ...(onAdmit ? { onAdmit } : {}),
      });
      if (res.status === 401 && attempt === 0) {
        this.#tokens.invalidate(token);
        continue;
      }
      return this.#json(res, path);
    }
  }

  /**
   * An authenticated POST of a command (CONTRACT §10): admitted before every other request, never retried here
   * (the command runner decides what may be sent again); one new token and one more try on 401, which Zaptec
   * answers before it acts. Returns the status and, for an error, the `Code` and `Details` of its body.
   */
  async #post(path: string, body: unknown, o: CallOptions): Promise<WriteAnswer> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.#tokens.token(o);
      const res = await this.#http.request({
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
        retry: false,
        priority: true,
        ...o,
      });
      if (res.status === 401 && attempt === 0) {
        this.#tokens.invalidate(token);
        continue;
      }
      let code: number | undefined;
      let details: string | undefined;
      try {
        const parsed = JSON.parse(res.body) as { Code?: unknown; Details?: unknown };
        if (typeof parsed.Code === 'number') code = parsed.Code;
        if (typeof parsed.Details === 'string') details = parsed.Details;
      } catch {}
      return { status: res.status, code, details };
    }
  }

  /** `POST /api/chargers/{id}/sendCommand/{commandId}` (506 pause, 507 resume, 102 restart, 10001 deauthorize). */
  sendCommand(chargerId: string, commandId: number, o: CallOptions = {}): Promise<WriteAnswer> {
    return this.#post(`/api/chargers/${chargerId}/sendCommand/${commandId}`, undefined, o);
  }

  /** `POST /api/installation/{id}/update`: its available current (one value, or one per phase). */
  updateInstallation(
    installationId: string,
    current:
      | { availableCurrent: number }
      | { availableCurrentPhase1: number; availableCurrentPhase2: number; availableCurrentPhase3: number },
    o: CallOptions = {},
  ): Promise<WriteAnswer> {
    return this.#post(`/api/installation/${installationId}/update`, current, o);
  }

  #json(res: HttpResponse, path: string): unknown {
    if (res.status === 204) return undefined;
    if (res.status < 200 || res.status >= 300)
      throw new HttpStatusError('GET', path.replace(/[0-9a-f-]{36}/gi, '{id}'), res.status);
    try {
      return JSON.parse(res.body);
    } catch {
      throw new PayloadError(`${path}: the response is not JSON`);
    }
  }

  /** Logs a payload problem once per endpoint and kind of problem, never once per item. */
  #bad(what: string, issue: z.core.$ZodIssue | undefined): void {
    const key = `${what}:${issue?.path.join('.')}:${issue?.code}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#log.warn(
      { what, field: issue?.path.join('.'), problem: issue?.message },
      'skipping an item the API sent that we cannot use',
    );
  }

  #items<S extends z.ZodType>(schema: S, items: unknown[], what: string): z.infer<S>[] {
    const out: z.infer<S>[] = [];
    for (const item of items) {
      const r = schema.safeParse(item);
      if (r.success) out.push(r.data);
      else this.#bad(what, r.error.issues[0]);
    }
    return out;
  }

  async #pages<S extends z.ZodType>(
    path: string,
    schema: S,
    what: string,
    o: CallOptions,
    extra = {},
  ): Promise<z.infer<S>[]> {
    const all: z.infer<S>[] = [];
    for (let page = 0, pages = 1; page < pages; page++) {
      const body = await this.#get(path, { ...extra, PageIndex: page, PageSize: PAGE_SIZE }, o);
      const parsed = pageSchema.safeParse(body);
      if (!parsed.success) throw new PayloadError(`${path}: not a page (${parsed.error.issues[0]?.message})`);
      pages = parsed.data.Pages;
      all.push(...this.#items(schema, parsed.data.Data, what));
    }
    return all;
  }

  /**
   * Completed sessions of an installation that ended in [from, to) (`GET /api/chargehistory`, with
   * `EnergyDetails`), page by page: `onPage` stores each before the next is asked for. Items are checked only
   * for being objects here; the session store reads what it can of each and logs the rest once.
   */
  async chargeHistory(
    installationId: string,
    from: number,
    to: number,
    onPage: (items: Record<string, unknown>[]) => Promise<void> | void,
    o: CallOptions = {},
  ): Promise<number> {
    const path = '/api/chargehistory';
    let total = 0;
    for (let page = 0, pages = 1; page < pages; page++) {
      const query = {
        InstallationId: installationId,
        From: new Date(from).toISOString(),
        To: new Date(to).toISOString(),
        DetailLevel: 1,
        PageIndex: page,
        PageSize: PAGE_SIZE,
      };
      const parsed = pageSchema.safeParse(await this.#get(path, query, o));
      if (!parsed.success) throw new PayloadError(`${path}: not a page (${parsed.error.issues[0]?.message})`);
      pages = parsed.data.Pages;
      const items = this.#items(chargeHistoryItemSchema, parsed.data.Data, 'charge-history session');
      total += items.length;
      await onPage(items);
    }
    return total;
  }

  installations(o: CallOptions = {}): Promise<Installation[]> {
    return this.#pages('/api/installation', installationSchema, 'installation', o);
  }

  chargers(o: CallOptions = {}): Promise<Charger[]> {
    return this.#pages('/api/chargers', chargerSchema, 'charger', o);
  }

  /** One charger by serial: the charger list filtered by name, then an exact DeviceId match. */
  async chargerBySerial(serial: string, o: CallOptions = {}): Promise<Charger | undefined> {
    const found = await this.#pages('/api/chargers', chargerSchema, 'charger', o, { NameFilter: serial });
    return found.find((c) => c.DeviceId?.toLowerCase() === serial.toLowerCase());
  }

  /** One charger by id; undefined when the API does not know it or does not let us see it. */
  async charger(id: string, o: CallOptions = {}): Promise<Charger | undefined> {
    try {
      const body = await this.#get(`/api/chargers/${encodeURIComponent(id)}`, undefined, o);
      const r = chargerSchema.safeParse(body);
      if (!r.success) {
        this.#bad('charger', r.error.issues[0]);
        return undefined;
      }
      return r.data;
    } catch (err) {
      if (err instanceof HttpStatusError && (err.status === 404 || err.status === 403 || err.status === 400))
        return undefined;
      throw err;
    }
  }

  /** One installation (`GET /api/installation/{id}`): its settings, the available current among them. */
  async installation(
    installationId: string,
    o: CallOptions = {},
  ): Promise<Record<string, unknown> | undefined> {
    const body = await this.#get(`/api/installation/${encodeURIComponent(installationId)}`, undefined, o);
    return body && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
  }

  /** The installation's circuits and chargers; undefined for 204 (provisioning, or no access). */
  async hierarchy(installationId: string, o: CallOptions = {}): Promise<unknown> {
    return this.#get(`/api/installation/${encodeURIComponent(installationId)}/hierarchy`, undefined, o);
  }

  constants(o: CallOptions = {}): Promise<Constants> {
    return this.#http.request({ method: 'GET', path: '/api/constants', ...o }).then((res) => {
      const r = constantsSchema.safeParse(this.#json(res, '/api/constants'));
      if (!r.success) throw new PayloadError(`/api/constants: ${r.error.issues[0]?.message}`);
      return r.data;
    });
  }

  connectionDetails(installationId: string, o: CallOptions = {}): Promise<ConnectionDetails> {
    return this.#connectionDetails(`/api/installation/${encodeURIComponent(installationId)}`, o);
  }

  /** A user group's subscription (sessions.md B1): the same ConnectionDescriptor as an installation's. */
  userGroupConnectionDetails(groupId: string, o: CallOptions = {}): Promise<ConnectionDetails> {
    return this.#connectionDetails(`/api/userGroups/${encodeURIComponent(groupId)}`, o);
  }

  async #connectionDetails(owner: string, o: CallOptions): Promise<ConnectionDetails> {
    const body = await this.#get(`${owner}/messagingConnectionDetails`, undefined, o);
    const r = connectionDetailsSchema.safeParse(body);
    if (!r.success) throw new PayloadError(`messagingConnectionDetails: ${r.error.issues[0]?.message}`);
    return r.data;
  }

  /**
   * A charger's state. Served from the cache within 15 s, shared by concurrent callers, and never
   * read twice within 15 s even across restarts: waits (or fails with retryAt) instead.
   */
  async state(chargerId: string, o: CallOptions = {}): Promise<ApiObservation[]> {
    const now = this.#clock.now();
    const cached = this.#stateCache.get(chargerId);
    if (cached && now - cached.at < STATE_CACHE_MS) return cached.data;
    const inflight = this.#stateInflight.get(chargerId);
    if (inflight) return inflight;
    const p = this.#readState(chargerId, o).finally(() => this.#stateInflight.delete(chargerId));
    this.#stateInflight.set(chargerId, p);
    return p;
  }

  /**
   * Keeps an answer for the 15 s it is valid, and no longer: entries are kept in the order they were
   * stored, so the expired ones are at the front (a fleet-wide start pass would otherwise keep every
   * charger's state in memory).
   */
  #remember(chargerId: string, data: ApiObservation[]): void {
    const now = this.#clock.now();
    this.#stateCache.delete(chargerId);
    this.#stateCache.set(chargerId, { at: now, data });
    for (const [id, entry] of this.#stateCache) {
      if (now - entry.at < STATE_CACHE_MS) break;
      this.#stateCache.delete(id);
    }
  }

  /** When this charger's state was last read (epoch ms), by whichever process; undefined when never. */
  lastStateRead(chargerId: string): number | undefined {
    return this.#ledger.lastStateRead(chargerId);
  }

  /** Which of these chargers' state has been read, by whichever process (one look for many). */
  chargersRead(chargerIds: readonly string[]): Set<string> {
    return this.#ledger.chargersRead(chargerIds);
  }

  /** When this charger's state may next be read (epoch ms), whichever process read it last. */
  stateReadableAt(chargerId: string): number {
    const last = this.#ledger.lastStateRead(chargerId);
    return last === undefined ? 0 : last + STATE_READ_SPACING_MS;
  }

  async #readState(chargerId: string, o: CallOptions): Promise<ApiObservation[]> {
    const readable = this.stateReadableAt(chargerId);
    if (readable > this.#clock.now()) {
      if (o.deadline !== undefined && readable > o.deadline)
        throw new RateLimitedError('state', readable, 'local');
      await this.#clock.sleep(readable - this.#clock.now(), o.signal);
    }
    // Marked as each attempt is admitted, before it is sent: a crash right after cannot let a restarted
    // daemon read this charger again within 15 s.
    const body = await this.#get(`/api/chargers/${encodeURIComponent(chargerId)}/state`, undefined, o, (at) =>
      this.#ledger.markStateRead(chargerId, at),
    );
    // Counted from the answer too: admission may have held the request, and the next read must come
    // 15 s after the server served this one.
    try {
      this.#ledger.markStateRead(chargerId, this.#clock.now());
    } catch (err) {
      // A held lock: the mark written with the admission stands (the next read counts from the admission).
      if (!this.#ledger.busy(err)) throw err;
    }
    if (!Array.isArray(body)) throw new PayloadError('/api/chargers/{id}/state: not an array');
    const data = this.#items(observationSchema, body, 'state observation');
    this.#remember(chargerId, data);
    return data;
  }
}
