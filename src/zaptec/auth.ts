/**
 * The password grant (zaptec-api.md §1): one token at a time, one request in flight, reused until it
 * expires, re-requested when the API says 401. Refresh tokens are not used: Zaptec is phasing them out.
 */

import type { HttpClient } from '../http/client.js';
import { CredentialsError, HttpStatusError } from '../http/errors.js';
import { registerSecret } from '../log.js';
import type { Clock } from '../time.js';
import { tokenSchema } from './schemas.js';

/** A token is replaced this long before Zaptec says it expires. */
const EXPIRY_MARGIN_MS = 60_000;
/** When the response gives no lifetime, assume this (the docs' example is 3600 s). */
const DEFAULT_LIFETIME_S = 3600;
/**
 * After Zaptec refuses the password, the next login is tried this much later, the wait doubling up to an
 * hour (CONTRACT §7 Refused credentials): identity providers lock accounts after repeated failed logins.
 */
export const REFUSED_FIRST_RETRY_MS = 5 * 60_000;
export const REFUSED_MAX_RETRY_MS = 60 * 60_000;

/** The lasting condition after a refused password: no token request is sent until `retryAt`. */
export interface Refusal {
  since: number;
  status: number;
  /** When the owner's retry loop tries one login (or SIGHUP, sooner). */
  retryAt: number;
  waitMs: number;
}

export interface TokenOptions {
  deadline?: number;
  signal?: AbortSignal;
}

export class TokenSource {
  readonly #http: HttpClient;
  readonly #clock: Clock;
  readonly #username: string;
  readonly #password: string;
  #token: { value: string; expiresAt: number } | undefined;
  #inflight: Promise<string> | undefined;
  #refusal: Refusal | undefined;
  /** How many token requests were sent (for tests and metrics). */
  requests = 0;
  /** Told when a refusal starts or changes, and when a login works again (undefined). */
  onRefusal: ((refusal: Refusal | undefined) => void) | undefined;

  constructor(http: HttpClient, clock: Clock, username: string, password: string) {
    this.#http = http;
    this.#clock = clock;
    this.#username = username;
    this.#password = password;
    registerSecret(password);
  }

  async token(options: TokenOptions = {}): Promise<string> {
    const t = this.#token;
    if (t && this.#clock.now() < t.expiresAt) return t.value;
    // Refused: nothing that needs a token asks for one; only retryLogin() (the schedule, SIGHUP) does.
    if (this.#refusal) throw this.#refusedError(this.#refusal);
    return this.#login(options);
  }

  /** The refusal in force, if the password was refused and no login has worked since. */
  get refusal(): Refusal | undefined {
    return this.#refusal;
  }

  /**
   * One token request now, refused or not (the retry schedule, SIGHUP, or a check). A new refusal doubles
   * the wait before the next scheduled one; success ends the refusal.
   */
  async retryLogin(options: TokenOptions = {}): Promise<string> {
    return this.#login(options);
  }

  #login(options: TokenOptions): Promise<string> {
    this.#inflight ??= this.#fetch(options).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  #refusedError(r: Refusal): CredentialsError {
    return new CredentialsError(
      `Zaptec refused the username or password (HTTP ${r.status}) at ${new Date(r.since).toISOString()}; ` +
        `no login is tried before ${new Date(r.retryAt).toISOString()}: correct ZAPTEC_PASSWORD (or the password file) and send SIGHUP or restart`,
    );
  }

  #refused(status: number): CredentialsError {
    const now = this.#clock.now();
    const prev = this.#refusal;
    const waitMs = prev ? Math.min(REFUSED_MAX_RETRY_MS, prev.waitMs * 2) : REFUSED_FIRST_RETRY_MS;
    this.#refusal = { since: prev?.since ?? now, status, retryAt: now + waitMs, waitMs };
    this.#token = undefined;
    this.onRefusal?.(this.#refusal);
    return this.#refusedError(this.#refusal);
  }

  /** The API refused this token (401): the next call asks for a new one. */
  invalidate(value: string): void {
    if (this.#token?.value === value) this.#token = undefined;
  }

  async #fetch(options: TokenOptions): Promise<string> {
    const body = new URLSearchParams({
      grant_type: 'password',
      username: this.#username,
      password: this.#password,
    });
    this.requests++;
    const res = await this.#http.request({
      method: 'POST',
      path: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      retry: true, // asking for a token changes nothing on the server
      ...options,
    });
    if (res.status === 400 || res.status === 401 || res.status === 403) throw this.#refused(res.status);
    if (res.status !== 200) throw new HttpStatusError('POST', '/oauth/token', res.status);
    let parsed: ReturnType<typeof tokenSchema.safeParse>;
    try {
      parsed = tokenSchema.safeParse(JSON.parse(res.body));
    } catch {
      throw new Error('the token response is not JSON');
    }
    if (!parsed.success)
      throw new Error(`the token response is not usable: ${parsed.error.issues[0]?.message}`);
    const { access_token, expires_in } = parsed.data;
    registerSecret(access_token);
    if (this.#refusal) {
      this.#refusal = undefined;
      this.onRefusal?.(undefined);
    }
    const lifetimeMs = (expires_in ?? DEFAULT_LIFETIME_S) * 1000;
    this.#token = {
      value: access_token,
      expiresAt: this.#clock.now() + Math.max(lifetimeMs / 2, lifetimeMs - EXPIRY_MARGIN_MS),
    };
    return access_token;
  }
}
