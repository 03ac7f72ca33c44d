import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Admission, PRIORITY_RESERVE, type Ticket } from '../../src/http/admission.js';
import { RateLimitedError } from '../../src/http/errors.js';
import { groupsFor, type VendorProfile } from '../../src/http/profile.js';
import { zaptecProfile } from '../../src/http/profiles.js';
import { type Db, openDatabase } from '../../src/store/database.js';
import { SqliteBudgetLedger } from '../../src/store/sqlite/budget-ledger.js';
import { SteppedClock, VirtualClock } from '../clock.js';
import { maxInWindow, tempDir } from '../helpers.js';

function db(): Db {
  return openDatabase(join(tempDir(), 'z.db'), { create: true });
}

function admittedTimes(d: Db, group: string): number[] {
  return (
    d.prepare('SELECT at_ms FROM api_requests WHERE grp = ? ORDER BY at_ms').all(group) as { at_ms: number }[]
  ).map((r) => r.at_ms);
}

describe('admission', () => {
  it('never admits more than a window holds, for any arrival sequence (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 5 }),
        async (gaps, limit, seconds) => {
          const d = db();
          const clock = new VirtualClock();
          const profile: VendorProfile = {
            vendor: 'test',
            guardMs: 0,
            headers: {},
            groups: [
              {
                name: 'g',
                match: { path: '.*' },
                windows: [
                  { kind: 'sliding', limit, seconds },
                  { kind: 'bucket', ratePerSecond: limit, burst: limit + 1 },
                ],
              },
            ],
          };
          const a = new Admission(new SqliteBudgetLedger(d), clock, profile);
          const groups = groupsFor(profile, 'GET', '/x');
          for (const gap of gaps) {
            clock.advance(gap);
            await a.admit(groups, 'GET', '/x');
          }
          const times = admittedTimes(d, 'g');
          d.close();
          expect(times).toHaveLength(gaps.length);
          expect(maxInWindow(times, seconds * 1000)).toBeLessThanOrEqual(limit);
          // Token bucket: in any interval of length t, at most burst + rate·t.
          for (let i = 0; i < times.length; i++) {
            for (let j = i; j < times.length; j++) {
              const span = times[j]! - times[i]!;
              expect(j - i + 1).toBeLessThanOrEqual(limit + 1 + (limit * span) / 1000 + 1e-9);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('is all-or-nothing across groups: a full list window records nothing in the global group', () => {
    const d = db();
    const clock = new VirtualClock();
    const profile = zaptecProfile(600);
    const a = new Admission(new SqliteBudgetLedger(d), clock, profile);
    const lists = groupsFor(profile, 'GET', '/api/chargers');
    expect(lists.map((g) => g.name)).toEqual(['global', 'lists']);
    for (let i = 0; i < 25; i++) {
      clock.advance(200);
      expect('ids' in a.tryAdmit(lists, 'GET', '/api/chargers')).toBe(true);
    }
    clock.advance(200);
    const r = a.tryAdmit(lists, 'GET', '/api/chargers');
    expect('ids' in r).toBe(false);
    expect(admittedTimes(d, 'global')).toHaveLength(25);
    expect(admittedTimes(d, 'lists')).toHaveLength(25);
    // A state read is only in the global group: it still goes.
    expect(
      'ids' in
        a.tryAdmit(groupsFor(profile, 'GET', '/api/chargers/x/state'), 'GET', '/api/chargers/{id}/state'),
    ).toBe(true);
  });

  it('holds Zaptec’s list windows over hours of demand: ≤ 25 a minute, ≤ 130 in 30 minutes', async () => {
    const d = db();
    const clock = new VirtualClock();
    const profile = zaptecProfile(1000);
    const a = new Admission(new SqliteBudgetLedger(d), clock, profile);
    const lists = groupsFor(profile, 'GET', '/api/installation');
    for (let i = 0; i < 600; i++) await a.admit(lists, 'GET', '/api/installation');
    const times = admittedTimes(d, 'lists');
    expect(maxInWindow(times, 60_000)).toBeLessThanOrEqual(25);
    expect(maxInWindow(times, 1_800_000)).toBeLessThanOrEqual(130);
    // The burst bucket: 15 at once, then 9 a second — never more than 15 + 9·t in any t seconds.
    const global = admittedTimes(d, 'global');
    expect(maxInWindow(global, 1)).toBeLessThanOrEqual(15);
    expect(maxInWindow(global, 1000)).toBeLessThanOrEqual(24);
  });

  it('fails at once with retryAt when the caller cannot wait, and honours persisted blocks', async () => {
    const d = db();
    const clock = new VirtualClock();
    const profile = zaptecProfile(600);
    const a = new Admission(new SqliteBudgetLedger(d), clock, profile);
    const groups = groupsFor(profile, 'GET', '/api/chargers/x/state');
    a.block('global', clock.now() + 30_000, 'server:retry-after', '429');
    const err = await a.admit(groups, 'GET', '/s', { deadline: clock.now() + 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.retryAt).toBe(clock.now() + 30_000);
    expect(err.source).toBe('server');
    // A new Admission over the same file (a restart) still sees the block.
    const again = new Admission(new SqliteBudgetLedger(d), clock, profile);
    const t = await again.admit(groups, 'GET', '/s');
    expect(t.at).toBe(Date.parse('2024-10-10T08:57:30Z'));
  });

  it('rebuilds the burst bucket from the log after a restart', () => {
    const d = db();
    const clock = new VirtualClock();
    const profile = zaptecProfile(1000);
    const groups = groupsFor(profile, 'GET', '/api/chargers/x/state');
    let a = new Admission(new SqliteBudgetLedger(d), clock, profile);
    let n = 0;
    while ('ids' in a.tryAdmit(groups, 'GET', '/s')) n++;
    expect(n).toBe(12); // the profile keeps 3 of Zaptec’s 15 for arrival jitter
    a = new Admission(new SqliteBudgetLedger(d), clock, profile);
    expect('ids' in a.tryAdmit(groups, 'GET', '/s')).toBe(false);
  });
});

describe('admission across restarts at Zaptec’s real windows (virtual clock)', () => {
  it('twenty starts in ten minutes, each wanting 12 list calls: ≤ 30 a minute, ≤ 150 in 30 minutes', async () => {
    const d = db();
    const clock = new VirtualClock();
    const profile = zaptecProfile(600);
    const groups = groupsFor(profile, 'GET', '/api/chargers');
    for (let start = 0; start < 20; start++) {
      const a = new Admission(new SqliteBudgetLedger(d), clock, profile); // a new process: nothing in memory
      for (let i = 0; i < 12; i++) await a.admit(groups, 'GET', '/api/chargers');
      clock.advance(30_000);
    }
    const times = admittedTimes(d, 'lists');
    expect(times).toHaveLength(240);
    expect(maxInWindow(times, 60_000)).toBeLessThanOrEqual(30);
    expect(maxInWindow(times, 1_800_000)).toBeLessThanOrEqual(150);
  });
});

/** One group `g` with one sliding window. */
function oneWindow(limit: number, seconds: number): VendorProfile {
  return {
    vendor: 'test',
    guardMs: 0,
    headers: {},
    groups: [{ name: 'g', match: { path: '.*' }, windows: [{ kind: 'sliding', limit, seconds }] }],
  };
}

/** An admission over one sliding window of `limit` requests in `seconds`, on a stepped clock. */
function oneWindowAdmission(limit: number, seconds: number) {
  const d = db();
  const clock = new SteppedClock(Date.parse('2026-12-07T10:00:00Z'));
  const profile = oneWindow(limit, seconds);
  const a = new Admission(new SqliteBudgetLedger(d), clock, profile);
  return { d, clock, a, groups: groupsFor(profile, 'GET', '/x') };
}

describe('the priority lane (commands go first, CONTRACT §10)', () => {
  it('while a priority request waits for room, the requests that were waiting before it go after it', async () => {
    const { d, clock, a, groups } = oneWindowAdmission(1, 10);
    await a.admit(groups, 'GET', '/x'); // the window is full for 10 s
    const order: string[] = [];
    const reads = [1, 2, 3].map((i) =>
      a.admit(groups, 'GET', `/read${i}`).then(() => order.push(`read${i}`)),
    );
    await clock.runUntil(clock.now() + 1_000, 2);
    const command = a.admit(groups, 'POST', '/command', { priority: true }).then(() => order.push('command'));
    await clock.runUntil(clock.now() + 60_000, 2);
    await Promise.all([...reads, command]);
    d.close();
    expect(order[0]).toBe('command');
    expect(order.slice(1).sort()).toEqual(['read1', 'read2', 'read3']);
  });

  it.each([
    ['without a deadline', undefined],
    ['with a deadline (a live-event stream asking for its connection details)', 600_000],
  ])(
    'hundreds waiting for room take turns, %s: each tries about once, not at every free slot (a herd blocks the event loop)',
    async (_, within) => {
      const d = db();
      const clock = new SteppedClock(Date.parse('2026-12-07T10:00:00Z'));
      const profile = zaptecProfile(600);
      let tries = 0;
      const ledger = new SqliteBudgetLedger(d);
      const exclusive = ledger.exclusive.bind(ledger);
      ledger.exclusive = (fn) => {
        tries++;
        return exclusive(fn);
      };
      const a = new Admission(ledger, clock, profile);
      const groups = groupsFor(profile, 'GET', '/api/chargers/x/state');
      expect(groups.map((g) => g.name)).toEqual(['global']);
      const n = 300;
      let admitted = 0;
      const options = within === undefined ? {} : { deadline: clock.now() + within };
      const all = Array.from({ length: n }, () =>
        a.admit(groups, 'GET', '/x', options).then(() => {
          admitted++;
        }),
      );
      const until = clock.now() + 120_000;
      while (admitted < n && clock.now() < until) await clock.runUntil(clock.now() + 1_000, 1);
      await Promise.all(all);
      expect(admitted).toBe(n);
      // One try that finds room, and at most one or two that find the next slot taken: linear, not n²/2.
      expect(tries).toBeLessThan(3 * n);
      expect(maxInWindow(admittedTimes(d, 'global'), 1000)).toBeLessThanOrEqual(24);
      d.close();
    },
  );

  it('a group whose last requests all failed sends one probe, and the others wait for its outcome (half-open)', async () => {
    const { d, clock, a, groups } = oneWindowAdmission(100, 1);
    for (let i = 0; i < 5; i++) a.settle(await a.admit(groups, 'GET', '/x'), 503, 'error');
    const probe = await a.admit(groups, 'GET', '/probe');
    let second: Ticket | undefined;
    const waiting = a.admit(groups, 'GET', '/second').then((t) => {
      second = t;
    });
    await clock.runUntil(clock.now() + 5_000, 2);
    expect(second).toBeUndefined(); // the probe has not been answered
    a.settle(probe, 200, 'ok');
    await clock.runUntil(clock.now() + 2_000, 2);
    await waiting;
    expect(second).toBeDefined();
    d.close();
  });

  it('a request with a deadline waiting in line leaves it when the deadline comes, and is told when to try again', async () => {
    const { d, clock, a, groups } = oneWindowAdmission(1, 10);
    await a.admit(groups, 'GET', '/x'); // the window is full for 10 s
    const first = a.admit(groups, 'GET', '/first');
    const second = a.admit(groups, 'GET', '/second'); // its turn comes 20 s on
    await clock.runUntil(clock.now() + 1_000, 2);
    const start = clock.now();
    // The window has room before its deadline, but not the line: its turn would come after the second's.
    const late = a.admit(groups, 'GET', '/late', { deadline: start + 15_000 }).catch((e: unknown) => e);
    await clock.runUntil(start + 16_000, 2);
    const err = await late;
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).retryAt).toBeGreaterThan(start + 15_000);
    await clock.runUntil(clock.now() + 60_000, 2);
    await Promise.all([first, second]);
    expect(admittedTimes(d, 'g')).toHaveLength(3);
    d.close();
  });

  it('with a reserve, the others spend only what is left of a window: a command finds room at once', async () => {
    const d = db();
    const clock = new SteppedClock(Date.parse('2026-12-07T10:00:00Z'));
    const profile = oneWindow(20, 60);
    const a = new Admission(new SqliteBudgetLedger(d), clock, profile, undefined, {
      priorityReserve: PRIORITY_RESERVE,
    });
    const groups = groupsFor(profile, 'GET', '/x');
    const t0 = clock.now();
    const reads = Array.from({ length: 25 }, (_, i) => a.admit(groups, 'GET', `/read${i}`));
    await clock.runUntil(t0 + 1_000, 1);
    expect(admittedTimes(d, 'g')).toHaveLength(19); // 20 a minute, one kept for priority
    const command = a.admit(groups, 'POST', '/command', { priority: true });
    await clock.runUntil(t0 + 1_100, 1);
    await command;
    expect(admittedTimes(d, 'g')).toHaveLength(20);
    expect(admittedTimes(d, 'g').at(-1)).toBeLessThan(t0 + 1_100); // at once, not a minute later
    await clock.runUntil(t0 + 180_000, 1);
    await Promise.all(reads);
    // The window never held more than its limit, whatever the lanes.
    expect(maxInWindow(admittedTimes(d, 'g'), 60_000)).toBeLessThanOrEqual(20);
    d.close();
  });
});
