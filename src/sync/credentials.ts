/**
 * Refused credentials are a lasting condition, not a retry loop (CONTRACT §7): while Zaptec refuses the
 * password nothing asks for a token but this loop, which tries one login 5 minutes after the refusal, then
 * 10, 20, 40, and hourly after that; SIGHUP tries one at once. Live events and everything that needs no
 * token go on meanwhile.
 */
import type { Logger } from '../log.js';
import type { Clock } from '../time.js';
import { quietAbortController } from '../time.js';
import type { Refusal, TokenSource } from '../zaptec/auth.js';
import type { Problems } from './problems.js';

/** When a scheduled login got no answer at all (network), it is tried again this much later. */
const REFUSED_NETWORK_RETRY_MS = 60_000;

export interface CredentialRetryDeps {
  tokens: TokenSource;
  clock: Clock;
  log: Logger;
  problems: Problems;
}

export class CredentialRetry {
  readonly #d: CredentialRetryDeps;
  readonly #abort = quietAbortController();
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(deps: CredentialRetryDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#d.tokens.onRefusal = (r) => this.#report(r);
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await this.#loop;
  }

  /** SIGHUP: after a refusal, one login at once (the operator says the password was corrected). */
  loginNow(): void {
    const r = this.#d.tokens.refusal;
    if (!r) return;
    r.retryAt = this.#d.clock.now();
    this.#wake?.();
  }

  #report(r: Refusal | undefined): void {
    if (!r) {
      this.#d.problems.ok('credentials', 'Zaptec accepts the password again');
      this.#wake?.();
      return;
    }
    this.#d.problems.fail(
      'credentials',
      `Zaptec refuses the username or password (HTTP ${r.status}) since ${new Date(r.since).toISOString()}: ` +
        `correct ZAPTEC_PASSWORD (or the password file) and send SIGHUP or restart; the daemon tries one login at ${new Date(r.retryAt).toISOString()}`,
    );
    this.#wake?.();
  }

  async #run(): Promise<void> {
    const { tokens, clock } = this.#d;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const r = tokens.refusal;
      const wait = r ? r.retryAt - clock.now() : 60 * 60_000;
      if (wait > 0) {
        await this.#sleep(wait);
        continue;
      }
      // The answer reaches #report through onRefusal; a network error simply waits for the next turn.
      await tokens.retryLogin({ signal }).catch(() => {});
      if (tokens.refusal && tokens.refusal.retryAt <= clock.now())
        await this.#sleep(REFUSED_NETWORK_RETRY_MS);
    }
  }

  #sleep(ms: number): Promise<void> {
    const woken = new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    return Promise.race([woken, this.#d.clock.sleep(ms, this.#abort.signal)]).finally(() => {
      this.#wake = undefined;
    });
  }
}
