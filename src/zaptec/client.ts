/** Builds the Zaptec client stack: admission over the budget's ledger, the HTTP client, the token, the API. */
import { Admission, PRIORITY_RESERVE } from '../http/admission.js';
import { HttpClient } from '../http/client.js';
import type { VendorProfile } from '../http/profile.js';
import { zaptecProfile } from '../http/profiles.js';
import type { Logger } from '../log.js';
import type { BudgetLedger } from '../store/budget-ledger.js';
import type { Clock } from '../time.js';
import { ZaptecApi } from './api.js';
import { TokenSource } from './auth.js';

export interface ZaptecClientOptions {
  apiUrl: string;
  username: string;
  password: string;
  requestsPerMinute: number;
  version: string;
  /** The budget's ledger (admission's record, the 15-second rule's reads). */
  ledger: BudgetLedger;
  clock: Clock;
  log: Logger;
  /** Resolves once the database's commits are on disk (the daemon's group commit); none in tools. */
  durable?: () => Promise<void>;
  /** Defaults to Zaptec's profile at `requestsPerMinute`; tests scale it. */
  profile?: VendorProfile;
  /** ZAPTEC_COMMANDS=on: a share of the budget is kept for commands (admission's priority reserve). */
  commands?: boolean;
  random?: () => number;
  /** Defaults: 15 s for the headers, 30 s between body chunks, 60 s for a whole attempt; tests shorten them. */
  timeouts?: { headersMs: number; bodyMs: number; attemptMs: number };
}

export interface ZaptecClient {
  admission: Admission;
  http: HttpClient;
  tokens: TokenSource;
  api: ZaptecApi;
  close(): Promise<void>;
}

export function createZaptecClient(o: ZaptecClientOptions): ZaptecClient {
  const admission = new Admission(
    o.ledger,
    o.clock,
    o.profile ?? zaptecProfile(o.requestsPerMinute),
    o.durable,
    {
      priorityReserve: o.commands ? PRIORITY_RESERVE : 0,
    },
  );
  const http = new HttpClient({
    baseUrl: o.apiUrl,
    admission,
    clock: o.clock,
    userAgent: `zaptec-sync/${o.version}`,
    log: o.log,
    ...(o.random ? { random: o.random } : {}),
    ...(o.timeouts
      ? {
          headersTimeoutMs: o.timeouts.headersMs,
          bodyTimeoutMs: o.timeouts.bodyMs,
          attemptTimeoutMs: o.timeouts.attemptMs,
        }
      : {}),
  });
  const tokens = new TokenSource(http, o.clock, o.username, o.password);
  const api = new ZaptecApi(http, tokens, o.ledger, o.clock, o.log);
  return { admission, http, tokens, api, close: () => http.close() };
}
