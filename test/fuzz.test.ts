/** issue 9 §3: no input makes the parsers throw anything but their typed errors. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';
import { parseRateLimit } from '../src/http/rate-limit-headers.js';
import { parseZaptecTime } from '../src/time.js';
import {
  chargerSchema,
  connectionDetailsSchema,
  constantsSchema,
  installationSchema,
  observationSchema,
  pageSchema,
} from '../src/zaptec/schemas.js';
import { CONTRACT_VARIABLES } from './contract.js';

const headerValue = fc.oneof(
  fc.string(),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.constantFrom(
    '0',
    '-1',
    '1e3',
    '0x10',
    '99999999999999999999',
    'Thu, 10 Oct 2024 08:58:00 GMT',
    '"a";r=0;t=',
    'r=;t=5',
    '30m',
    '2024-13-45T99:99:99Z',
  ),
);
const headerName = fc.constantFrom(
  'retry-after',
  'retry-after-ms',
  'x-ms-retry-after-ms',
  'x-retry-after',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'x-ratelimit-limit',
  'x-rate-limit-remaining',
  'x-rate-limit-reset',
  'x-rate-limit-limit',
  'x-rate-limit',
  'ratelimit',
  'ratelimit-policy',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-limit',
  'date',
);

describe('fuzzing', () => {
  it('the rate-limit header parser never throws and never returns a negative or non-finite wait', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 599 }),
        fc.dictionary(headerName, headerValue),
        fc.constantFrom('auto', 'epoch-s', 'epoch-ms', 'delta-s', 'delta-ms', 'iso'),
        (status, headers, resetFormat) => {
          const info = parseRateLimit(status, headers, Date.parse('2024-10-10T08:57:00Z'), { resetFormat });
          if (info.waitMs !== undefined) {
            expect(Number.isFinite(info.waitMs)).toBe(true);
            expect(info.waitMs).toBeGreaterThanOrEqual(0);
            expect(info.waitMs).toBeLessThanOrEqual(86_400_000);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('the payload schemas answer every input with success or issues, never an exception', () => {
    const schemas = [
      pageSchema,
      installationSchema,
      chargerSchema,
      observationSchema,
      constantsSchema,
      connectionDetailsSchema,
    ];
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true }), (input) => {
        for (const s of schemas) expect(typeof s.safeParse(input).success).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('the configuration throws only ConfigError', () => {
    const names = [...CONTRACT_VARIABLES.filter((n) => n !== 'ZAPTEC_PASSWORD_FILE'), 'WATCHDOG_USEC'];
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), fc.string()), (env) => {
        try {
          parseConfig({ ZAPTEC_USERNAME: 'u', ZAPTEC_PASSWORD: 'p', ...env }, { requireCredentials: true });
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('Zaptec timestamps parse to a time or to nothing', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const t = parseZaptecTime(text);
        if (t !== undefined) expect(Number.isFinite(t)).toBe(true);
      }),
    );
  });
});
