/**
 * The vendor-neutral HTTP client: every attempt is admitted (and recorded) first, the server's wait is
 * a floor that is persisted as a block, reads are retried with full jitter on 5xx and network errors,
 * and nothing that writes is ever retried. One undici Agent for the life of the process.
 */
import { Agent, type Dispatcher, request } from 'undici';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { Clock } from '../time.js';
import { type Admission, BREAKER_THRESHOLD, type Ticket } from './admission.js';
import { type Backoff, fullJitter } from './backoff.js';
import { HttpStatusError, NetworkError, RateLimitedError } from './errors.js';
import { type GroupDef, groupsFor, longestWindowMs } from './profile.js';
import { parseRateLimit } from './rate-limit-headers.js';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  body?: string;
  /** Latest time (epoch ms) the caller can wait until; beyond it → RateLimitedError at once. */
  deadline?: number;
  signal?: AbortSignal;
  /** Retry on 5xx/network errors/429. Default: GET only. Writes are never retried. */
  retry?: boolean;
  /** Admitted before every other request of this process (a command). */
  priority?: boolean;
  /**
   * Told the admission time of each attempt inside the admission's transaction, before it is sent (what a
   * crash must not forget): a synchronous database write, committed and synced with the admission.
   */
  onAdmit?: (at: number) => void;
}

export interface HttpClientOptions {
  baseUrl: string;
  admission: Admission;
  clock: Clock;
  userAgent: string;
  log: Logger;
  random?: () => number;
  dispatcher?: Dispatcher;
  maxAttempts?: number;
  backoff?: Backoff;
  headersTimeoutMs?: number;
  /** Longest silence between body chunks. */
  bodyTimeoutMs?: number;
  /** Longest a whole attempt may take, however steadily a slow body trickles in. */
  attemptTimeoutMs?: number;
}

/** Whether a network error proves the request never reached the server (it may safely be sent again). */
export function neverSent(err: unknown): boolean {
  return err instanceof NetworkError && NEVER_SENT.has(err.code);
}

/** Connection errors that prove the request never reached the server: refunded, not counted. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ATTEMPT_TIMEOUT']);

/** At least this long after a second 429 in a row: the group's shortest window (60 s for Zaptec's lists). */
function shortestWindowMs(group: GroupDef): number {
  const sliding = group.windows.flatMap((w) => (w.kind === 'sliding' ? [w.seconds * 1000] : []));
  return sliding.length > 0 ? Math.min(...sliding) : 60_000;
}

/**
 * The circuit breaker (rate-limits.md §5.5): after this many failures in a row in a group (5xx, timeouts,
 * network errors), the group pauses — 30–60 s, doubling with each further failure up to 5 minutes — and the
 * next request after the pause is the one probe. The count and the pause live in SQLite, so a restart
 * neither forgets an outage nor floods the API when it ends.
 */
const BREAKER_BASE_MS = 30_000;
const BREAKER_CAP_MS = 5 * 60_000;
/** The same kind of header warning is logged again only after this long. */
const WARN_AGAIN_MS = 10 * 60_000;

/** Ids and serials out of paths, so the log and the budget table hold no identifiers and no secrets. */
export function pathLabel(path: string): string {
  return path.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '{id}');
}

export class HttpClient {
  readonly #o: Required<Omit<HttpClientOptions, 'dispatcher'>> & { dispatcher: Dispatcher };
  #ownsDispatcher: boolean;
  #inFlight = 0;

  constructor(options: HttpClientOptions) {
    this.#ownsDispatcher = !options.dispatcher;
    const headersTimeout = options.headersTimeoutMs ?? 15_000;
    const bodyTimeout = options.bodyTimeoutMs ?? 30_000;
    this.#o = {
      random: Math.random,
      maxAttempts: 4,
      backoff: { baseMs: 1000, capMs: 60_000 },
      headersTimeoutMs: headersTimeout,
      bodyTimeoutMs: bodyTimeout,
      attemptTimeoutMs: 60_000,
      ...options,
      dispatcher:
        options.dispatcher ??
        new Agent({ connections: 4, keepAliveTimeout: 4_000, headersTimeout, bodyTimeout }),
    };
  }

  /** Attempts sent and not yet answered in full (the simulation harness waits for them). */
  get inFlight(): number {
    return this.#inFlight;
  }

  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#o.dispatcher.close();
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    const { admission, clock } = this.#o;
    const retry = req.retry ?? req.method === 'GET';
    const groups = groupsFor(admission.profile, req.method, req.path);
    const label = pathLabel(req.path);
    for (let attempt = 0; ; attempt++) {
      const ticket = await admission.admit(groups, req.method, label, {
        deadline: req.deadline,
        signal: req.signal,
        ...(req.onAdmit ? { record: req.onAdmit } : {}),
        ...(req.priority ? { priority: true } : {}),
      });
      let res: HttpResponse;
      try {
        res = await this.#send(req);
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR';
        if (NEVER_SENT.has(code)) admission.refund(ticket);
        else {
          admission.settle(ticket, null, TIMEOUTS.has(code) ? 'timeout' : 'network_error');
          this.#breaker(ticket, label, code);
        }
        if (req.signal?.aborted) throw err;
        const netErr = new NetworkError(req.method, label, code, describeError(err));
        if (!retry || attempt + 1 >= this.#o.maxAttempts) throw netErr;
        await this.#backoff(attempt, undefined, req, netErr);
        continue;
      }
      const now = clock.now();
      this.#noteSkew(res.headers.date, now);
      const info = parseRateLimit(res.status, res.headers, now, {
        ...admission.profile.headers,
        ceilingMs: Math.max(60_000, 2 * Math.max(...groups.map(longestWindowMs))),
      });
      for (const w of info.warnings) this.#warnOnce(w, label, res.status, now);
      if (res.status === 429) {
        admission.settle(ticket, 429, 'rate_limited');
        this.#on429(ticket, info.waitMs, attempt, label, info.sources);
        if (!retry || attempt + 1 >= this.#o.maxAttempts) {
          throw new RateLimitedError(ticket.groups[0] ?? 'global', admission.nextFree(groups), 'server');
        }
        continue; // admission waits for the block, or fails at once past the deadline
      }
      admission.settle(ticket, res.status, res.status < 400 ? 'ok' : 'http_error');
      if (res.status >= 500) this.#breaker(ticket, label, String(res.status));
      else this.#breakerClosed(ticket.groups);
      if (info.exhausted && info.waitMs !== undefined && info.waitMs > 0) {
        for (const g of ticket.groups) {
          admission.block(
            g,
            now + info.waitMs,
            `server:${info.sources.join('+')}`,
            `remaining 0 (${res.status})`,
          );
        }
      }
      if (res.status >= 500 && retry && attempt + 1 < this.#o.maxAttempts) {
        await this.#backoff(attempt, info.waitMs, req, new HttpStatusError(req.method, label, res.status));
        continue;
      }
      return res;
    }
  }

  /**
   * A 429 pauses every group of the request until the time it names. For a group whose long window the
   * server does not describe, a second 429 in a row blocks until that window frees (rate-limits.md §5.5).
   */
  #on429(
    ticket: Ticket,
    waitMs: number | undefined,
    attempt: number,
    label: string,
    sources: string[],
  ): void {
    const { admission, clock, log } = this.#o;
    const now = clock.now();
    const wait = waitMs ?? fullJitter(attempt, this.#o.backoff, this.#o.random);
    const jitter = this.#o.random() * Math.min(1000, wait * 0.1);
    const until = now + wait + jitter;
    let rule = waitMs === undefined ? 'backoff (no header)' : sources.join('+');
    ticket.groups.forEach((name, i) => {
      const group = admission.profile.groups.find((g) => g.name === name);
      if (group?.blockOnRepeated429 && admission.previousStatus(name, ticket.ids[i]!) === 429) {
        const windowFree = Math.max(now + shortestWindowMs(group), admission.windowFreesAt(group, now));
        admission.block(name, windowFree, 'local:second-429', `second 429 in a row on ${label}`);
        rule = `second 429 in a row: ${name} blocked until its window frees`;
      }
      admission.block(
        name,
        until,
        waitMs === undefined ? 'local:backoff' : 'server:retry-after',
        `429 on ${label}`,
      );
    });
    log.warn({ path: label, waitMs: Math.round(until - now), rule }, 'API answered 429: pausing');
  }

  /** Opens the breaker of each group of a failed request whose failures in a row reached the threshold. */
  #breaker(ticket: Ticket, label: string, cause: string): void {
    const { admission, clock, log } = this.#o;
    const now = clock.now();
    const paused = new Set(admission.usage().flatMap((u) => (u.blockedUntil !== undefined ? [u.group] : [])));
    for (const group of ticket.groups) {
      const n = admission.failuresInARow(group, BREAKER_THRESHOLD + 8);
      if (n < BREAKER_THRESHOLD) continue;
      // A request already on its way when the group was paused: its failure neither extends nor doubles the
      // pause (the probe after it decides).
      if (paused.has(group)) continue;
      const pause = Math.min(
        BREAKER_CAP_MS,
        BREAKER_BASE_MS * 2 ** (n - BREAKER_THRESHOLD) * (1 + this.#o.random()),
      );
      admission.block(
        group,
        now + pause,
        'local:breaker',
        `${n} failures in a row, last ${cause} on ${label}`,
      );
      // Logged when the group starts failing; a failed probe's longer pause is the same condition.
      const fields = { group, failures: n, pauseMs: Math.round(pause), path: label, cause };
      if (this.#failing.has(group)) log.debug(fields, 'API still failing: a longer pause, then one probe');
      else log.warn(fields, 'API failing: pausing the group, then one probe');
      this.#failing.add(group);
    }
  }

  /** Groups whose breaker opened, until one of their requests is answered again. */
  readonly #failing = new Set<string>();

  #breakerClosed(groups: readonly string[]): void {
    for (const group of groups) {
      if (this.#failing.delete(group)) this.#o.log.info({ group }, 'API answers again: the group is open');
    }
  }

  readonly #warned = new Map<string, number>();

  /**
   * A header warning, at most once in 10 minutes per kind (numbers aside): a server whose clock is off, or
   * that always sends a malformed header, would otherwise put a line in the log for every response.
   */
  #warnOnce(warning: string, label: string, status: number, now: number): void {
    const kind = warning.replace(/-?\d+(\.\d+)?/g, '#');
    const last = this.#warned.get(kind);
    if (last !== undefined && now - last < WARN_AGAIN_MS) return;
    this.#warned.set(kind, now);
    this.#o.log.warn({ path: label, status }, `rate-limit headers: ${warning}`);
  }

  /** The server's clock minus ours, from the last response's Date header (doctor reports it). */
  lastSkewMs: number | undefined;

  #noteSkew(date: string | string[] | undefined, now: number): void {
    const text = Array.isArray(date) ? date[0] : date;
    const t = text ? Date.parse(text) : Number.NaN;
    if (!Number.isNaN(t)) this.lastSkewMs = t - now;
  }

  async #backoff(
    attempt: number,
    serverWaitMs: number | undefined,
    req: HttpRequest,
    cause: Error,
  ): Promise<void> {
    const { clock } = this.#o;
    const wait = Math.max(serverWaitMs ?? 0, fullJitter(attempt, this.#o.backoff, this.#o.random));
    if (req.deadline !== undefined && clock.now() + wait > req.deadline) throw cause;
    await clock.sleep(wait, req.signal);
  }

  async #send(req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(this.#o.baseUrl + req.path);
    for (const [k, v] of Object.entries(req.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const limit = AbortSignal.timeout(this.#o.attemptTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, limit]) : limit;
    this.#inFlight++;
    try {
      const res = await request(url, {
        method: req.method,
        headers: { 'user-agent': this.#o.userAgent, accept: 'application/json', ...req.headers },
        body: req.body,
        signal,
        dispatcher: this.#o.dispatcher,
        headersTimeout: this.#o.headersTimeoutMs,
        bodyTimeout: this.#o.bodyTimeoutMs,
      });
      const body = await res.body.text();
      return { status: res.statusCode, headers: res.headers as HttpResponse['headers'], body };
    } catch (err) {
      if (!limit.aborted || req.signal?.aborted) throw err;
      throw Object.assign(new Error(`no complete answer within ${this.#o.attemptTimeoutMs} ms`), {
        code: 'ATTEMPT_TIMEOUT',
      });
    } finally {
      this.#inFlight--;
    }
  }
}
