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
  /** How many token requests were sent (for tests and metrics). */
  requests = 0;

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
    this.#inflight ??= this.#fetch(options).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
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
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      throw new CredentialsError(
        `Zaptec refused the username or password (HTTP ${res.status}); check ZAPTEC_USERNAME and the password`,
      );
    }
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
    const lifetimeMs = (expires_in ?? DEFAULT_LIFETIME_S) * 1000;
    this.#token = {
      value: access_token,
      expiresAt: this.#clock.now() + Math.max(lifetimeMs / 2, lifetimeMs - EXPIRY_MARGIN_MS),
    };
    return access_token;
  }
}
