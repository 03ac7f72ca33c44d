/**
 * The documented contracts of the vendors the client layer serves (rate-limits.md §6), as data.
 * Limits are set a little under the documented ones where other clients may share the account.
 */
import type { VendorProfile } from './profile.js';

/** Below the documented 150 per 30 min and 30 per min: other integrations may share the login. */
export const ZAPTEC_LIST_LIMITS = { perMinute: 25, per30Minutes: 130 } as const;

/**
 * Zaptec: every call counts against the global minute (ZAPTEC_REQUESTS_PER_MINUTE, ≤ 1000) and the
 * 10/s burst-15 bucket (kept at 9/s burst 12); the two list endpoints against 30/min and 150/30 min; the token endpoint 1/s.
 */
export function zaptecProfile(requestsPerMinute: number): VendorProfile {
  return {
    vendor: 'zaptec',
    guardMs: 250,
    headers: { resetFormat: 'auto', zonelessIsUtc: true },
    groups: [
      {
        name: 'global',
        match: { path: '.*' },
        windows: [
          { kind: 'sliding', limit: Math.min(requestsPerMinute, 1000), seconds: 60 },
          // 9/s burst 12 rather than 10/s burst 15: the server's bucket counts a request when it arrives,
          // ours when it leaves; a stalled event loop or the network can bunch a few together, and after a
          // full burst the server's bucket has no room for that (seen once under heavy load).
          { kind: 'bucket', ratePerSecond: 9, burst: 12 },
        ],
      },
      {
        name: 'lists',
        match: { methods: ['GET'], path: '^/api/(chargers|installation)/?$' },
        windows: [
          { kind: 'sliding', limit: ZAPTEC_LIST_LIMITS.perMinute, seconds: 60 },
          { kind: 'sliding', limit: ZAPTEC_LIST_LIMITS.per30Minutes, seconds: 1800 },
        ],
        blockOnRepeated429: true,
      },
      {
        name: 'auth',
        match: { methods: ['POST'], path: '^/oauth/token$' },
        windows: [{ kind: 'sliding', limit: 1, seconds: 1 }],
      },
    ],
  };
}

/**
 * Wattwatchers: budgets scale with the fleet. Transactions per day = devices × (288 + 288 + 2880) × 1.25;
 * per second = max(5, min(devices, max(50, devices / 3))). Re-evaluate when the device count changes.
 */
export function wattwatchersProfile(devices: number): VendorProfile {
  const perDay = Math.floor(devices * (288 + 288 + 2880) * 1.25);
  const perSecond = Math.floor(Math.max(5, Math.min(devices, Math.max(50, devices / 3))));
  return {
    vendor: 'wattwatchers',
    guardMs: 100,
    headers: { resetFormat: 'auto' },
    groups: [
      {
        name: 'global',
        match: { path: '.*' },
        windows: [
          { kind: 'sliding', limit: perDay, seconds: 86_400 },
          { kind: 'sliding', limit: perSecond, seconds: 1 },
        ],
      },
    ],
  };
}

/** Allegion: a fixed window of 100 per 60 s per API; `x-rate-limit-reset` documented as epoch seconds. */
export function allegionProfile(): VendorProfile {
  return {
    vendor: 'allegion',
    guardMs: 250,
    headers: { resetFormat: 'auto' },
    groups: [
      { name: 'global', match: { path: '.*' }, windows: [{ kind: 'sliding', limit: 100, seconds: 60 }] },
    ],
  };
}

/** Zaki-Pass: 100 per minute per API key, the window resetting every 60 s; resets as Unix timestamps. */
export function zakiPassProfile(): VendorProfile {
  return {
    vendor: 'zaki-pass',
    guardMs: 250,
    headers: { resetFormat: 'epoch-s' },
    groups: [
      { name: 'global', match: { path: '.*' }, windows: [{ kind: 'sliding', limit: 100, seconds: 60 }] },
    ],
  };
}

/** Switch: `POST /api/readings` 5 per second and 20 per minute for OAuth apps; other endpoints unlimited. */
export function switchProfile(): VendorProfile {
  return {
    vendor: 'switch',
    guardMs: 100,
    headers: { resetFormat: 'iso' },
    groups: [
      {
        name: 'readings',
        match: { methods: ['POST'], path: '^/api/readings$' },
        windows: [
          { kind: 'sliding', limit: 5, seconds: 1 },
          { kind: 'sliding', limit: 20, seconds: 60 },
        ],
      },
    ],
  };
}
