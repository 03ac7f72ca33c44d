/**
 * Timing policies on the simulated clock (issue 14 §4): what used to wait minutes of real time against the
 * `run` process — the budget-bound cold start of 1,000 chargers, a 429 storm in every header convention, the
 * circuit breaker's pause after a 5xx storm — runs here in seconds, the whole daemon in-process, with every
 * invariant of the simulated month checked after each simulated minute as well. The built CLI keeps its own
 * real-time end-to-end tests (`test/sync/run.test.ts`, `test/faults.test.ts`).
 */
import { describe, expect, it } from 'vitest';
import type { SimRequest } from '../../src/simulator/rest.js';
import { simulate, type World } from './world.js';

const MIN = 60_000;
const isState = (r: SimRequest) => r.path.endsWith('/state');
const served = (r: SimRequest) => isState(r) && r.status === 200;

/** A run of `minutes` simulated minutes with events off and no fleet life; returns what the world saw. */
async function polling(
  fleet: { installations: number; chargersPerInstallation: number },
  minutes: number,
  scenario: (world: World) => void = () => {},
  env: Record<string, string> = {},
) {
  let world: World | undefined;
  const report = await simulate({
    seed: 1,
    days: minutes / (24 * 60),
    ...fleet,
    faults: false,
    life: false,
    keepRequests: true,
    env: { ZAPTEC_EVENTS: 'off', ...env },
    scenario: (w) => {
      world = w;
      scenario(w);
    },
  });
  return { report, requests: world!.requests(), warnings: world!.warnings };
}

/** Waits on the simulated clock until `cond` holds. */
async function until(world: World, cond: () => boolean): Promise<void> {
  while (!cond()) await world.clock.sleep(100);
}

/** A delta in whole seconds, rounded up as a server would so that its client never comes early. */
const secondsUntil = (t: number, at: number) => Math.ceil((t - at) / 1000);

/** A server's "wait until" in each convention, for a reset at `t` (whole seconds) named at arrival `at`. */
const CONVENTIONS: [string, (t: number, at: number) => Record<string, string>][] = [
  ['Retry-After in seconds', (t, at) => ({ 'retry-after': String(secondsUntil(t, at)) })],
  ['Retry-After as an HTTP date', (t) => ({ 'retry-after': new Date(t).toUTCString() })],
  ['retry-after-ms', (t, at) => ({ 'retry-after-ms': String(t - at) })],
  ['x-ms-retry-after-ms', (t, at) => ({ 'x-ms-retry-after-ms': String(t - at) })],
  [
    'X-RateLimit-Reset in epoch seconds',
    (t) => ({
      'x-ratelimit-limit': '600',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(t / 1000),
    }),
  ],
  [
    'X-Rate-Limit-Reset as ISO 8601',
    (t) => ({ 'x-rate-limit-remaining': '0', 'x-rate-limit-reset': new Date(t).toISOString() }),
  ],
  [
    'RateLimit-Reset in seconds (IETF drafts ≤ 06)',
    (t, at) => ({
      'ratelimit-limit': '600',
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(secondsUntil(t, at)),
    }),
  ],
  [
    'RateLimit with RateLimit-Policy (IETF draft 11)',
    (t, at) => ({
      ratelimit: `"minute";r=0;t=${secondsUntil(t, at)}`,
      'ratelimit-policy': '"minute";q=600;w=60',
    }),
  ],
];

describe('timing policies on the simulated clock', () => {
  it('a fresh database of 50 installations × 20 chargers: one pass, every charger read once, as fast as the budget allows', {
    timeout: 120_000,
  }, async () => {
    const { requests } = await polling({ installations: 50, chargersPerInstallation: 20 }, 5, undefined, {
      ZAPTEC_REQUESTS_PER_MINUTE: '1000',
    });
    const paths = requests.map((r) => r.path);
    expect(paths.filter((p) => p === '/api/installation')).toHaveLength(1); // 50 fit on one page
    expect(paths.filter((p) => p === '/api/chargers')).toHaveLength(10); // 1000 in pages of 100
    expect(paths.filter((p) => p.endsWith('/hierarchy'))).toHaveLength(50);
    const reads = requests.filter(served);
    // The start pass: every charger once, at the budget's 9 a second (the bucket's 10/s less a margin), so
    // about 111 s for 1,000, and not much more. (Polling may begin on other workers while the pass's last
    // reads are on their way: it is bounded below.)
    const firsts = new Map<string, number>();
    for (const r of reads) if (!firsts.has(r.path)) firsts.set(r.path, r.at);
    expect(firsts.size).toBe(1000);
    const took = Math.max(...firsts.values()) - requests[0]!.at;
    expect(took).toBeGreaterThanOrEqual(100_000);
    expect(took).toBeLessThanOrEqual(150_000);
    // Polling follows at the budget's cadence for the fleet (1,000 at half of 9/s: 223 s), never sooner.
    const last = new Map<string, number>();
    let shortest = Infinity;
    for (const r of reads) {
      const before = last.get(r.path);
      if (before !== undefined) shortest = Math.min(shortest, r.at - before);
      last.set(r.path, r.at);
    }
    expect(reads.length).toBeGreaterThan(1000);
    expect(shortest).toBeGreaterThanOrEqual(110_000);
    expect(requests.filter((r) => r.limit)).toEqual([]);
  });

  it('a 429 storm in every header convention: nothing is sent before the time each one names', {
    timeout: 60_000,
  }, async () => {
    const named: { at: number; until: number }[] = [];
    const { requests } = await polling({ installations: 1, chargersPerInstallation: 1 }, 10, (world) => {
      void world.clock.sleep(2 * MIN).then(() => {
        world.sim.rest.faults.push(
          ...CONVENTIONS.map(([, headers]) => ({
            path: /\/state$/,
            status: 429,
            times: 1,
            headers: (at: number) => {
              const reset = Math.ceil((at + 30_000) / 1000) * 1000;
              named.push({ at, until: reset });
              return headers(reset, at);
            },
          })),
        );
      });
    });
    expect(named).toHaveLength(CONVENTIONS.length);
    for (const [i, { at, until }] of named.entries()) {
      const early = requests.filter((r) => r.at > at && r.at < until);
      expect(early, `after the ${CONVENTIONS[i]![0]} 429`).toEqual([]);
      // And not much later either: the read comes as soon as the named time has passed.
      const next = requests.find((r) => r.at >= until);
      expect(next, `after the ${CONVENTIONS[i]![0]} 429`).toBeDefined();
      expect(next!.at - until).toBeLessThan(5_000);
    }
    expect(requests.some((r) => served(r) && r.at > named.at(-1)!.until)).toBe(true);
  });

  it('a 5xx storm becomes a pause of 30–60 s after 5 failures in a row, then one probe, and reads go on', {
    timeout: 60_000,
  }, async () => {
    const storm = { path: /^\/api\//, status: 503, times: 1_000_000 };
    let opened = 0;
    const { requests, warnings } = await polling(
      { installations: 1, chargersPerInstallation: 3 },
      10,
      (world) => {
        void (async () => {
          await world.clock.sleep(2 * MIN);
          world.sim.rest.faults.push(storm);
          const failed = () => world.requests().filter((r) => r.status === 503).length;
          await until(world, () => failed() >= 5);
          opened = world.clock.now();
          storm.times = 0; // the API is back, but the daemon does not know it until its probe
        })();
      },
    );
    const failures = requests.filter((r) => r.status === 503);
    expect(failures.length).toBeGreaterThanOrEqual(5);
    const fifth = failures[4]!.at;
    expect(opened).toBeGreaterThan(0);
    // Nothing is sent after the fifth but what was already on its way with it.
    expect(failures.filter((r) => r.at > fifth + 1_000)).toEqual([]);
    const probe = requests.find((r) => r.at > fifth + 1_000)!;
    expect(probe.at - fifth).toBeGreaterThanOrEqual(30_000);
    expect(probe.at - fifth).toBeLessThanOrEqual(61_000);
    expect(probe.status).toBe(200);
    // Polling goes on after the probe.
    expect(requests.filter((r) => served(r) && r.at > probe.at).length).toBeGreaterThanOrEqual(3);
    expect(warnings.join('\n')).toMatch(/API failing: pausing the group, then one probe/);
  });

  it('a 5xx storm of 20 minutes: longer pauses after each failed probe, one warning for the whole storm', {
    timeout: 60_000,
  }, async () => {
    const storm = { path: /^\/api\//, status: 503, times: 0 };
    const { requests, warnings } = await polling(
      { installations: 1, chargersPerInstallation: 3 },
      40,
      (world) => {
        void world.clock.sleep(2 * MIN).then(() => {
          storm.times = 1_000_000;
          world.sim.rest.faults.push(storm);
          return world.clock.sleep(20 * MIN).then(() => {
            storm.times = 0;
          });
        });
      },
    );
    const failures = requests.filter((r) => r.status === 503);
    // 5 in a row, then one probe per pause, the pauses doubling (30–60 s, 60–120 s, …, up to 5 minutes).
    expect(failures.length).toBeGreaterThanOrEqual(8);
    expect(failures.length).toBeLessThanOrEqual(5 + 4 + 10);
    expect(warnings.filter((w) => /API failing: pausing the group/.test(w))).toHaveLength(1);
    // After the storm the reads go on.
    expect(requests.filter((r) => served(r) && r.at > failures.at(-1)!.at).length).toBeGreaterThan(10);
  });

  it('a long Retry-After survives a restart, clamped to twice the longest window it concerns', {
    timeout: 60_000,
  }, async () => {
    let hit = 0;
    const { requests } = await polling({ installations: 1, chargersPerInstallation: 1 }, 10, (world) => {
      void (async () => {
        await world.clock.sleep(2 * MIN);
        world.sim.rest.faults.push({
          path: /\/state$/,
          status: 429,
          times: 1,
          headers: (at: number) => {
            hit = at;
            return { 'retry-after': '3600' };
          },
        });
        await until(world, () => hit > 0);
        await world.clock.sleep(5_000);
        await world.restart(10_000);
      })();
    });
    expect(hit).toBeGreaterThan(0);
    // The global group's longest window is 60 s: an hour is implausible, so 120 s (plus jitter), and the
    // daemon started again 15 s later sends nothing before that either.
    const next = requests.find((r) => r.at > hit)!;
    expect(next.at - hit).toBeGreaterThanOrEqual(119_000);
    expect(next.at - hit).toBeLessThanOrEqual(125_000);
  });
});
