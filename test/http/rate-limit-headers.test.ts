/**
 * The 34 header vectors of rate-limits.md §5.7. now = 2024-10-10T08:57:00Z. The suite runs under
 * TZ=UTC and TZ=Europe/Oslo (see the two describe blocks: the process zone is switched per block).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Headers, type ParseOptions, parseRateLimit } from '../../src/http/rate-limit-headers.js';

const NOW = Date.parse('2024-10-10T08:57:00Z');
const ZAPTEC: ParseOptions = { zonelessIsUtc: true, ceilingMs: 3_600_000 };

type Expect = number | 'backoff' | ((info: ReturnType<typeof parseRateLimit>) => void);
const vectors: [number, string, number, Headers, Expect, ParseOptions?][] = [
  [1, 'delta-seconds', 429, { 'retry-after': '120' }, 120],
  [2, 'IMF-fixdate', 429, { 'retry-after': 'Thu, 10 Oct 2024 08:58:00 GMT' }, 60],
  [3, 'RFC 850', 429, { 'retry-after': 'Thursday, 10-Oct-24 08:58:00 GMT' }, 60],
  [4, 'asctime is GMT', 429, { 'retry-after': 'Thu Oct 10 08:58:00 2024' }, 60],
  [5, 'a date in the past', 429, { 'retry-after': 'Thu, 10 Oct 2024 08:56:00 GMT' }, 0],
  [6, 'zero is valid', 429, { 'retry-after': '0' }, 0],
  [7, 'negative', 429, { 'retry-after': '-5' }, 'backoff'],
  [7, 'not a number', 429, { 'retry-after': 'abc' }, 'backoff'],
  [7, 'hex', 429, { 'retry-after': '0x10' }, 'backoff'],
  [7, 'exponent', 429, { 'retry-after': '1e3' }, 'backoff'],
  [7, 'empty', 429, { 'retry-after': '' }, 'backoff'],
  [
    8,
    'decimal, rounded up, warned',
    429,
    { 'retry-after': '1.5' },
    (i) => {
      expect(i.waitMs).toBe(2000);
      expect(i.warnings.join()).toMatch(/whole number/);
    },
  ],
  [9, 'repeated header', 429, { 'retry-after': ['5', '30'] }, 30],
  [9, 'repeated header, folded', 429, { 'retry-after': '5, 30' }, 30],
  [
    10,
    'absurd value clamped and warned',
    429,
    { 'retry-after': '99999999' },
    (i) => {
      expect(i.waitMs).toBe(3_600_000);
      expect(i.warnings.join()).toMatch(/implausibl/);
    },
    ZAPTEC,
  ],
  [
    11,
    'epoch seconds',
    429,
    { 'x-ratelimit-limit': '30', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1728550680' },
    60,
  ],
  [12, 'epoch ms', 429, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1728550680000' }, 60],
  [13, 'ISO UTC', 429, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2024-10-10T08:58:00Z' }, 60],
  [
    14,
    'zone-less ISO rejected',
    429,
    { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2024-10-10T08:58:00' },
    'backoff',
  ],
  [
    14,
    'zone-less ISO with a UTC profile',
    429,
    { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2024-10-10T08:58:00' },
    60,
    ZAPTEC,
  ],
  [15, 'delta seconds', 429, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '45' }, 45],
  [
    16,
    'not exhausted: no wait, the server remaining is learned',
    200,
    { 'x-ratelimit-remaining': '3', 'x-ratelimit-reset': '1728550680' },
    (i) => {
      expect(i.waitMs).toBeUndefined();
      expect(i.remaining).toBe(3);
      expect(i.resetAt).toBe(Date.parse('2024-10-10T08:58:00Z'));
      expect(i.exhausted).toBe(false);
    },
  ],
  [
    17,
    'ISO with 7 fractional digits, rounded up',
    429,
    {
      'x-rate-limit': '100',
      'x-rate-limit-remaining': '0',
      'x-rate-limit-reset': '2024-10-10T08:57:58.1747411Z',
    },
    59,
  ],
  [
    18,
    'the same vendor as documented',
    429,
    { 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': '1728550678' },
    58,
  ],
  [19, 'vendor seconds header', 429, { 'x-retry-after': '30' }, 30],
  [
    20,
    'max of Retry-After and the reset',
    429,
    { 'retry-after': '10', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1728550680' },
    60,
  ],
  [
    21,
    'draft-11 with policies learned',
    429,
    { 'ratelimit-policy': '"burst";q=100;w=60,"daily";q=1000;w=86400', ratelimit: '"burst";r=0;t=30' },
    (i) => {
      expect(i.waitMs).toBe(30_000);
      expect(i.policies).toEqual([
        { name: 'burst', quota: 100, windowSeconds: 60 },
        { name: 'daily', quota: 1000, windowSeconds: 86400 },
      ]);
    },
  ],
  [
    22,
    'the most restrictive exhausted item',
    429,
    { ratelimit: '"daily";r=0;t=3600, "burst";r=5;t=10' },
    3600,
  ],
  [23, 'draft-07 dictionary', 429, { ratelimit: 'limit=100, remaining=0, reset=5' }, 5],
  [
    24,
    'drafts up to 06',
    429,
    { 'ratelimit-limit': '10', 'ratelimit-remaining': '0', 'ratelimit-reset': '7' },
    7,
  ],
  [25, 'no effective window, no policy', 429, { ratelimit: '"default";r=0' }, 'backoff'],
  [
    25,
    'no effective window, the policy window',
    429,
    { ratelimit: '"default";r=0', 'ratelimit-policy': '"default";q=50;w=60' },
    60,
  ],
  [
    26,
    'malformed is ignored',
    429,
    { ratelimit: 'r=abc;t=5' },
    (i) => {
      expect(i.waitMs).toBeUndefined();
      expect(i.warnings.join()).toMatch(/malformed/);
    },
  ],
  [27, 'Azure ms header', 429, { 'retry-after-ms': '1500' }, 1.5],
  [28, 'max of the ms header and Retry-After', 429, { 'x-ms-retry-after-ms': '250', 'retry-after': '1' }, 1],
  [
    29,
    'the server clock 30 s ahead',
    429,
    {
      date: 'Thu, 10 Oct 2024 08:57:30 GMT',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': '1728550680',
    },
    30,
  ],
  [
    30,
    'delta-ms by profile',
    429,
    { 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': '600000' },
    600,
    { resetFormat: 'delta-ms' },
  ],
  [
    30,
    'auto reads 6.9 days: implausible, clamped',
    429,
    { 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': '600000' },
    (i) => {
      expect(i.waitMs).toBe(86_400_000);
      expect(i.warnings.join()).toMatch(/implausibl/);
    },
  ],
  [
    31,
    'Zaptec 2023: the limit is a window',
    200,
    {
      'x-rate-limit-limit': '30m',
      'x-rate-limit-remaining': '649',
      'x-rate-limit-reset': '2023-09-28T16:00:00.0000000Z',
    },
    (i) => {
      expect(i.waitMs).toBeUndefined();
      expect(i.windowSeconds).toBe(1800);
      expect(i.remaining).toBe(649);
      expect(i.limit).toBeUndefined();
    },
    ZAPTEC,
  ],
  [
    8,
    'decimal reset delta (rule 2), rounded up, warned',
    429,
    { 'ratelimit-remaining': '0', 'ratelimit-reset': '3.2' },
    (i) => {
      expect(i.waitMs).toBe(4000);
      expect(i.warnings.join()).toMatch(/whole number/);
    },
  ],
  [32, 'no rate headers at all', 429, {}, 'backoff'],
  [
    33,
    'Zaptec: Retry-After 1 (the repeated-429 rule is the client’s)',
    429,
    { 'retry-after': '1' },
    1,
    ZAPTEC,
  ],
  [
    34,
    '503 with a hint is flow control',
    503,
    { 'retry-after': '20' },
    (i) => {
      expect(i.waitMs).toBe(20_000);
      expect(i.exhausted).toBe(false);
    },
  ],
];

function suite(tz: string): void {
  describe(`rate-limit headers under TZ=${tz}`, () => {
    let saved: string | undefined;
    beforeAll(() => {
      saved = process.env.TZ;
      process.env.TZ = tz;
    });
    afterAll(() => {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    });

    it('runs in the zone it names', () => {
      const offset = new Date(NOW).getTimezoneOffset();
      expect(offset).toBe(tz === 'UTC' ? 0 : -120);
    });

    it.each(vectors)('vector %i: %s', (_n, _what, status, headers, expected, options) => {
      const info = parseRateLimit(status, headers, NOW, options);
      if (expected === 'backoff') expect(info.waitMs).toBeUndefined();
      else if (typeof expected === 'number') expect(info.waitMs).toBe(expected * 1000);
      else expected(info);
    });
  });
}

suite('UTC');
suite('Europe/Oslo');
