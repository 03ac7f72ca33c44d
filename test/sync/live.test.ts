/** issue 5 "done when": the real SDK, the simulator's broker, the real `zaptec-sync run` process. */
import { describe, expect, it } from 'vitest';
import { NULL_CHARGER_ID } from '../../src/observation.js';
import type { SimObservation } from '../../src/simulator/fleet.js';
import { seededRandom } from '../../src/simulator/random.js';
import { encodeNbfx } from '../../src/zaptec/nbfx.js';
import { waitFor } from '../helpers.js';
import { liveHarness } from './live-harness.js';

type H = Awaited<ReturnType<typeof liveHarness>>;

/** Publishes `n` observations spread over the fleet, newest last; returns what must end up current. */
function publishMany(
  h: H,
  n: number,
  startAt: number,
  stateIds = [513, 553, 501],
): Map<string, SimObservation> {
  const chargers = [...h.sim.fleet.chargers.values()];
  const newest = new Map<string, SimObservation>();
  for (let i = 0; i < n; i++) {
    const c = chargers[i % chargers.length]!;
    const stateId = stateIds[Math.floor(i / chargers.length) % stateIds.length]!;
    const o = h.sim.fleet.set(c.id, stateId, String(i), startAt + i);
    h.sim.publish(o);
    newest.set(`${c.id}:${stateId}`, o);
  }
  return newest;
}

function expectCurrent(h: H, newest: Map<string, SimObservation>): void {
  const rows = h.query<{ charger_id: string; state_id: number; value: string; observed_at: string }>(
    'SELECT charger_id, state_id, value, observed_at FROM charger_state WHERE state_id IN (513, 553, 501)',
  );
  const current = new Map(rows.map((r) => [`${r.charger_id}:${r.state_id}`, r]));
  for (const [key, o] of newest) {
    expect(current.get(key), key).toMatchObject({
      value: o.value,
      observed_at: new Date(o.at).toISOString(),
    });
  }
}

const drained = (h: H) => () =>
  [...h.sim.fleet.installations.keys()].every((id) => {
    const c = h.sim.channel(id);
    const s = h.sim.broker.stats(c.topic, c.subscription);
    return s.ready === 0 && s.locked === 0;
  });

describe('live events into SQLite', () => {
  it('stores garbage-free streams exactly, dead-letters garbage with our reason, and ignores the all-zero ChargerId', async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 5 });
    const run = h.start();
    await h.connected();
    const inst = [...h.sim.fleet.installations.keys()][0]!;
    const t0 = Date.now();
    const chargers = [...h.sim.fleet.chargers.values()].filter((c) => c.installationId === inst);
    const newest = new Map<string, SimObservation>();
    for (let i = 0; i < 400; i++) {
      const c = chargers[i % chargers.length]!;
      const o = h.sim.fleet.set(c.id, 513, String(i), t0 + i);
      h.sim.publish(o);
      newest.set(`${c.id}:513`, o);
      if (i % 4 === 0)
        h.sim.publishRaw(inst, i % 8 === 0 ? Buffer.from([0x40, 0x06, 0x73, 0x74]) : 'not an observation');
      if (i % 50 === 0) {
        h.sim.publishRaw(
          inst,
          encodeNbfx(
            JSON.stringify({ ChargerId: NULL_CHARGER_ID, StateId: 1, Timestamp: '2024-01-01T00:00:00Z' }),
          ),
        );
      }
    }
    const c = h.sim.channel(inst);
    await waitFor(drained(h), { what: 'the subscription drained' });
    const stats = h.sim.broker.stats(c.topic, c.subscription);
    expect(stats.deadLettered).toBe(100);
    expect(new Set(stats.deadLetters.map((m) => m.applicationProperties.DeadLetterReason))).toEqual(
      new Set(['MalformedObservation']),
    );
    expect(stats.deadLetters.every((m) => typeof m.body === 'string' || m.body.length < 10)).toBe(true); // no valid one among them (P17)
    expectCurrent(h, newest);
    expect(
      h.one<{ n: number }>(
        "SELECT count(*) AS n FROM charger_state_history WHERE state_id = 513 AND source = 'event'",
      ).n,
    ).toBe(400);
    expect(
      h.one<{ n: number }>('SELECT count(*) AS n FROM charger_state WHERE charger_id = ?', NULL_CHARGER_ID).n,
    ).toBe(0);
    expect(run.child.exitCode).toBeNull();
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('a first start connects the live events once the hierarchies are read, without waiting for the charger pages', async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 2 });
    // The charger list answers slowly (at 30,000 chargers its pages take over an hour by the lists' limit).
    h.sim.rest.faults.push({ path: /^\/api\/chargers$/, status: 503, times: 1, delayMs: 25_000 });
    const run = h.start();
    await waitFor(
      () => h.one<{ n: number }>("SELECT count(*) AS n FROM sync_status WHERE events = 'connected'").n === 2,
      { timeoutMs: 20_000, what: 'live events connected while the charger list is still being read' },
    );
    expect(run.output()).not.toMatch(/inventory pass (completed|failed)/);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('keeps the newer of two observations delivered newest-first', async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 1 });
    const run = h.start();
    await h.connected();
    const c = [...h.sim.fleet.chargers.values()][0]!;
    const t = Date.now() + 60_000;
    h.sim.publish({
      chargerId: c.id,
      deviceId: c.deviceId,
      deviceType: 4,
      stateId: 710,
      value: '3',
      at: t + 1000,
    });
    h.sim.publish({ chargerId: c.id, deviceId: c.deviceId, deviceType: 4, stateId: 710, value: '2', at: t });
    await waitFor(
      () =>
        h.one<{ n: number }>(
          "SELECT count(*) AS n FROM charger_state_history WHERE state_id = 710 AND source = 'event'",
        ).n === 2,
    );
    expect(h.one('SELECT value, observed_at FROM charger_state WHERE state_id = 710')).toEqual({
      value: '3',
      observed_at: new Date(t + 1000).toISOString(),
    });
    run.child.kill('SIGTERM');
    await run.exited;
  });

  it('recovers by itself when the broker is killed and restarted mid-stream: nothing lost', async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 10 });
    const run = h.start();
    await h.connected();
    const t0 = Date.now();
    const first = publishMany(h, 2000, t0);
    await h.sim.broker.stop();
    const second = publishMany(h, 2000, t0 + 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // the broker is down for a while
    await h.sim.broker.start();
    await waitFor(drained(h), { timeoutMs: 45_000, what: 'the subscriptions drained after the restart' });
    expectCurrent(h, new Map([...first, ...second]));
    await h.connected();
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('loses nothing when the daemon is SIGKILLed three times mid-stream, and replays add no duplicate history', async () => {
    const h = await liveHarness(
      { installations: 2, chargersPerInstallation: 10 },
      { ZAPTEC_RECONCILE_MINUTES: '600' },
    );
    let run = h.start();
    await h.connected();
    const t0 = Date.now();
    const all = publishMany(h, 6000, t0);
    // Three SIGKILLs at seeded random points of the stream, each in the middle of a batch or between two.
    const random = seededRandom(9);
    let committed = 0;
    for (let i = 0; i < 3; i++) {
      const target = committed + 200 + Math.floor(random() * 1200);
      committed = await waitFor(
        () => {
          const n = h.one<{ n: number }>(
            "SELECT count(*) AS n FROM charger_state_history WHERE source = 'event'",
          ).n;
          return n > target ? n : 0;
        },
        { timeoutMs: 30_000, what: `${target} observations before kill ${i + 1}` },
      );
      run.child.kill('SIGKILL');
      await run.exited;
      run = h.start();
    }
    const second = run;
    await waitFor(drained(h), { timeoutMs: 30_000, what: 'drained after the restart' });
    expectCurrent(h, all);
    const events = h.one<{ n: number }>(
      "SELECT count(*) AS n FROM charger_state_history WHERE source = 'event'",
    ).n;
    expect(events).toBe(6000);
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  });

  it('recovers from a rotated SAS key within 30 s, without a restart', async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 });
    const run = h.start();
    await h.connected();
    const inst = [...h.sim.fleet.installations.keys()][0]!;
    const rotatedAt = Date.now();
    h.sim.rotateKey(inst);
    const c = [...h.sim.fleet.chargers.values()][0]!;
    const o = h.sim.fleet.set(c.id, 513, '4242', Date.now() + 120_000);
    h.sim.publish(o);
    await waitFor(
      () =>
        h.one<{ value: string } | undefined>(
          'SELECT value FROM charger_state WHERE charger_id = ? AND state_id = 513',
          c.id,
        )?.value === '4242',
      {
        timeoutMs: 30_000,
        what: 'a message through the new key',
      },
    ).catch((err) => {
      console.log(run.output());
      throw err;
    });
    if (Date.now() - rotatedAt >= 30_000) console.log(run.output());
    expect(Date.now() - rotatedAt).toBeLessThan(30_000);
    // It fetched the connection details again and used the new key.
    expect(
      h.sim.rest.requests.filter((r) => r.path.endsWith('/messagingConnectionDetails')).length,
    ).toBeGreaterThanOrEqual(2);
    expect(run.output()).not.toContain(h.sim.channel(inst).key);
    run.child.kill('SIGTERM');
    await run.exited;
  });
});
