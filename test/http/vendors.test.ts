/**
 * Each vendor profile against a loopback server enforcing exactly that vendor's documented contract,
 * windows scaled 30× shorter on both sides: asked for 3× what is allowed, the client causes no 429;
 * against a server that starts out exhausted, nothing is sent before the time its headers named.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Admission } from '../../src/http/admission.js';
import { HttpClient } from '../../src/http/client.js';
import { scaleProfile, type VendorProfile } from '../../src/http/profile.js';
import {
  allegionProfile,
  switchProfile,
  wattwatchersProfile,
  zakiPassProfile,
  zaptecProfile,
} from '../../src/http/profiles.js';
import { createLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { SqliteBudgetLedger } from '../../src/store/sqlite/budget-ledger.js';
import { systemClock } from '../../src/time.js';
import { tempDir } from '../helpers.js';
import { type Contract, ContractServer } from './contract-server.js';

const SCALE = 1 / 30;
const MIN = 60_000 * SCALE;
const iso = (t: number) => new Date(t).toISOString().replace('Z', '0000Z');

interface Case {
  profile: VendorProfile;
  contract: Contract;
  request: { method: 'GET' | 'POST'; path: string };
  /** For the exhausted-server test, when it differs (Zaptec: a state read; lists have their own rule). */
  exhaustedRequest?: { method: 'GET' | 'POST'; path: string };
  /** Three times the limit of the contract's tightest window. */
  ask: number;
  /** The vendor names a time in its 429 headers. */
  namesTime: boolean;
}

const cases: Case[] = [
  {
    profile: zaptecProfile(1000),
    request: { method: 'GET', path: '/api/chargers' },
    exhaustedRequest: { method: 'GET', path: '/api/chargers/93d603a7-ff53-4ed8-8dd6-f79c94819458/state' },
    ask: 90,
    namesTime: true,
    contract: {
      vendor: 'zaptec',
      groups: [
        { path: /.*/, rules: [{ kind: 'bucket', ratePerMs: 10 / 1000 / SCALE, burst: 15 }] },
        {
          method: 'GET',
          path: /^\/api\/(chargers|installation)$/,
          rules: [
            { kind: 'sliding', limit: 30, ms: MIN },
            { kind: 'sliding', limit: 150, ms: 30 * MIN },
          ],
        },
      ],
      headers: ({ status }): Record<string, string> => (status === 429 ? { 'retry-after': '1' } : {}),
      body429: '{"Message":"Too many requests"}',
    },
  },
  {
    profile: wattwatchersProfile(3),
    request: { method: 'GET', path: '/v3/devices' },
    ask: 15, // 3 × the 5-per-second window
    namesTime: false,
    contract: {
      vendor: 'wattwatchers',
      groups: [
        {
          path: /.*/,
          rules: [
            { kind: 'sliding', limit: 5, ms: 1000 * SCALE },
            { kind: 'sliding', limit: Math.floor(3 * 3456 * 1.25), ms: 86_400_000 * SCALE },
          ],
        },
      ],
      headers: () => ({}),
      body429: '{"message":"limit reached"}',
    },
  },
  {
    profile: allegionProfile(),
    request: { method: 'GET', path: '/credentials' },
    ask: 300,
    namesTime: true,
    contract: {
      vendor: 'allegion',
      groups: [{ path: /.*/, rules: [{ kind: 'fixed', limit: 100, ms: MIN }] }],
      headers: ({ status, limit, remaining, resetAt, now }): Record<string, string> =>
        status === 429
          ? {
              'x-rate-limit': String(limit),
              'x-rate-limit-remaining': '0',
              'x-retry-after': String(Math.ceil((resetAt - now) / 1000)),
              'x-rate-limit-reset': iso(resetAt),
            }
          : { 'x-rate-limit': String(limit), 'x-rate-limit-remaining': String(remaining) },
      body429: '{"error":"Rate limit exceeded"}',
    },
  },
  {
    profile: zakiPassProfile(),
    request: { method: 'GET', path: '/passes' },
    ask: 300,
    namesTime: true,
    contract: {
      vendor: 'zaki-pass',
      groups: [{ path: /.*/, rules: [{ kind: 'fixed', limit: 100, ms: MIN }] }],
      headers: ({ status, limit, remaining, resetAt, now }): Record<string, string> => ({
        'x-ratelimit-limit': String(limit),
        'x-ratelimit-remaining': String(remaining),
        'x-ratelimit-reset': String(Math.ceil(resetAt / 1000)),
        ...(status === 429 ? { 'retry-after': String(Math.ceil((resetAt - now) / 1000)) } : {}),
      }),
      body429:
        '{"statusCode":429,"message":"ThrottlerException: Too Many Requests","error":"Too Many Requests"}',
    },
  },
  {
    profile: switchProfile(),
    request: { method: 'POST', path: '/api/readings' },
    ask: 60,
    namesTime: true,
    contract: {
      vendor: 'switch',
      groups: [
        {
          method: 'POST',
          path: /^\/api\/readings$/,
          rules: [
            { kind: 'sliding', limit: 5, ms: 1000 * SCALE },
            { kind: 'sliding', limit: 20, ms: MIN },
          ],
        },
      ],
      headers: ({ status, remaining, resetAt, now }): Record<string, string> => ({
        'x-rate-limit-limit': '20',
        'x-rate-limit-remaining': String(remaining),
        'x-rate-limit-reset': new Date(resetAt).toISOString(),
        ...(status === 429 ? { 'retry-after': String(Math.ceil((resetAt - now) / 1000)) } : {}),
      }),
      body429:
        'API rate limit exceeded. Maximum allowed is 20 requests per 1m. Please try again in 41 second.',
    },
  },
];

const servers: ContractServer[] = [];
const clients: HttpClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.stop();
});

async function client(c: Case) {
  const server = new ContractServer(c.contract);
  servers.push(server);
  const url = await server.start();
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  const admission = new Admission(new SqliteBudgetLedger(db), systemClock, scaleProfile(c.profile, SCALE));
  const http = new HttpClient({
    baseUrl: url,
    admission,
    clock: systemClock,
    userAgent: 'zaptec-sync/test',
    log: createLogger({ level: 'silent' }),
  });
  clients.push(http);
  return { server, http };
}

describe.each(cases)('the $contract.vendor profile', (c) => {
  it(`asked for 3× the allowed requests, gets no 429`, async () => {
    const { server, http } = await client(c);
    for (let i = 0; i < c.ask; i++) {
      const res = await http.request({ ...c.request, body: c.request.method === 'POST' ? '{}' : undefined });
      expect(res.status).toBe(200);
    }
    expect(server.log).toHaveLength(c.ask);
    expect(server.refused).toBe(0);
  });

  it.runIf(c.namesTime)(
    'against an exhausted server, sends nothing before the time its headers named',
    async () => {
      const { server, http } = await client(c);
      server.exhaustedUntil = Date.now() + 2000;
      const started = Date.now();
      if (c.request.method === 'POST') {
        // Writes are never retried: the 429 comes back as an error carrying when to try again.
        const err = await http.request({ ...c.request, body: '{}' }).catch((e) => e);
        expect(err.name).toBe('RateLimitedError');
        expect(err.retryAt).toBeGreaterThanOrEqual(server.exhaustedUntil - 1000);
        const res = await http.request({ ...c.request, body: '{}' });
        expect(res.status).toBe(200);
      } else {
        const res = await http.request(c.exhaustedRequest ?? c.request);
        expect(res.status).toBe(200);
      }
      const [refused, ...after] = server.log;
      expect(refused?.status).toBe(429);
      // Headers carry whole seconds: the named time is the 429's reset rounded as the vendor writes it.
      const named = c.contract.vendor === 'zaptec' ? refused!.at + 1000 : server.exhaustedUntil - 999;
      for (const r of after) expect(r.at).toBeGreaterThanOrEqual(named);
      expect(after.at(-1)?.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(15_000);
    },
  );
});

describe('Zaptec’s lists after two 429s in a row (vector 33)', () => {
  it('block until the oldest of the last 130 requests leaves the 30-minute window, and fail fast past the deadline', async () => {
    const { VirtualClock } = await import('../clock.js');
    const server = new ContractServer({
      vendor: 'zaptec-spent-elsewhere',
      groups: [{ path: /.*/, rules: [{ kind: 'fixed', limit: 0, ms: 3_600_000 }] }],
      headers: () => ({ 'retry-after': '1' }),
      body429: '{}',
    });
    servers.push(server);
    const url = await server.start();
    const clock = new VirtualClock(Date.now());
    const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
    const admission = new Admission(new SqliteBudgetLedger(db), clock, zaptecProfile(600));
    const http = new HttpClient({
      baseUrl: url,
      admission,
      clock,
      userAgent: 'ua',
      log: createLogger({ level: 'silent' }),
    });
    clients.push(http);
    const first = clock.now();
    const err = await http
      .request({ method: 'GET', path: '/api/installation', deadline: first + 30_000 })
      .catch((e) => e);
    expect(err.name).toBe('RateLimitedError');
    expect(server.log.map((r) => r.status)).toEqual([429, 429]);
    // The oldest of our requests plus 30 minutes (and the guard): Retry-After 1 said nothing about it.
    expect(err.retryAt).toBeGreaterThanOrEqual(first + 1_800_000);
    expect(err.retryAt).toBeLessThan(first + 1_800_000 + 10_000);
    // Persisted: a restarted client is just as blocked, and sends nothing.
    const again = new Admission(new SqliteBudgetLedger(db), clock, zaptecProfile(600));
    expect(again.nextFree(admission.profile.groups.filter((g) => g.name === 'lists'))).toBe(err.retryAt);
  });
});
