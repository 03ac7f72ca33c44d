/**
 * Issue 16: user-group subscriptions with the real SDK, the simulator's broker and the real `run` process.
 * A group carries an installation from the first observation of its chargers that comes through it; the
 * installation's own subscription is closed then, and comes back when the group is refused.
 */
import { describe, expect, it } from 'vitest';
import { runCli, waitFor } from '../helpers.js';
import { liveHarness } from './live-harness.js';

type H = Awaited<ReturnType<typeof liveHarness>>;

const installations = (h: H) => [...h.sim.fleet.installations.keys()];

/** One new observation (state 513) per charger of the fleet; resolves when every one is stored. */
async function everyChargerSays(h: H, value: string): Promise<void> {
  const at = Date.now() + 60_000;
  for (const c of h.sim.fleet.chargers.values()) h.sim.publish(h.sim.fleet.set(c.id, 513, value, at));
  await waitFor(
    () =>
      h.one<{ n: number }>(
        'SELECT count(*) AS n FROM charger_state WHERE state_id = 513 AND value = ?',
        value,
      ).n === h.sim.fleet.chargers.size,
    { timeoutMs: 30_000, what: `every charger's 513 = ${value} stored` },
  );
}

const carried = (h: H) =>
  new Map(
    h
      .query<{ installation_id: string; group_id: string }>(
        'SELECT installation_id, group_id FROM user_group_installations',
      )
      .map((r) => [r.installation_id, r.group_id]),
  );

/** Whether the daemon has a receiver on the installation's own subscription. */
const ownAttached = (h: H, inst: string) => {
  const c = h.sim.channel(inst);
  return h.sim.broker.attached(c.topic, c.subscription);
};

describe('user-group subscriptions', () => {
  it('a group carrying 3 of 4 installations: learned from the traffic, their own subscriptions closed, the fourth keeps its own', {
    timeout: 60_000,
  }, async () => {
    const h = await liveHarness({ installations: 4, chargersPerInstallation: 2 });
    const [a, b, c, d] = installations(h) as [string, string, string, string];
    const group = h.sim.addUserGroup([a, b, c]);
    const run = h.start({ ZAPTEC_USER_GROUPS: group });
    await h.connected();
    await everyChargerSays(h, 'first');
    await waitFor(() => carried(h).size === 3, { what: 'the group carrying three installations' });
    expect(carried(h)).toEqual(new Map([a, b, c].map((i) => [i, group])));
    await waitFor(() => !ownAttached(h, a) && !ownAttached(h, b) && !ownAttached(h, c), {
      what: 'their own subscriptions closed',
    });
    expect(ownAttached(h, d)).toBe(true);
    // Everything still arrives, the three through the group only.
    await everyChargerSays(h, 'second');
    await h.connected();
    expect(
      h.one<{ detail: string | null }>('SELECT detail FROM sync_status WHERE installation_id = ?', a).detail,
    ).toBe(`through user group ${group}`);
    // status shows the group and what it carries; doctor finds its connection details.
    const env = { ...h.env, ZAPTEC_USER_GROUPS: group };
    const status = await runCli(['status', '--json'], { env, cwd: h.dir });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).user_groups).toEqual([
      { id: group, events: 'connected', detail: null, installations: [a, b, c].sort() },
    ]);
    const doctor = await runCli(['doctor'], { env, cwd: h.dir });
    expect(doctor.stdout).toMatch(
      new RegExp(`^ok +user group ${group}: subscription \\S+ of topic usergroup-\\S+ answers at `, 'm'),
    );
    expect(doctor.code).toBe(0);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    // Remembered across a restart: the carried installations get no subscription of their own.
    const again = h.start({ ZAPTEC_USER_GROUPS: group });
    await h.connected();
    await everyChargerSays(h, 'third');
    expect(ownAttached(h, a)).toBe(false);
    expect(ownAttached(h, d)).toBe(true);
    again.child.kill('SIGTERM');
    expect(await again.exited).toEqual({ code: 0, signal: null });
  });

  it('a group that also carries an installation ZAPTEC_INSTALLATIONS leaves out: each of its chargers is looked up once, never added, its events not kept', {
    timeout: 60_000,
  }, async () => {
    const h = await liveHarness({ installations: 3, chargersPerInstallation: 2 });
    const [a, b, c] = installations(h) as [string, string, string];
    const group = h.sim.addUserGroup([a, b, c]);
    const run = h.start({ ZAPTEC_USER_GROUPS: group, ZAPTEC_INSTALLATIONS: `${a},${b}` });
    await h.connected(30_000, 2); // the two followed installations
    const all = [...h.sim.fleet.chargers.values()];
    const outside = all.filter((ch) => ch.installationId === c).map((ch) => ch.id);
    const inside = all.filter((ch) => ch.installationId !== c).map((ch) => ch.id);
    const lookups = () =>
      h.sim.rest.requests.filter((r) => outside.some((id) => r.path === `/api/chargers/${id}`)).length;
    const say = async (value: string) => {
      const at = Date.now() + 60_000;
      for (const ch of all) h.sim.publish(h.sim.fleet.set(ch.id, 513, value, at));
      await waitFor(
        () =>
          h.one<{ n: number }>(
            `SELECT count(*) AS n FROM charger_state WHERE state_id = 513 AND value = ? AND charger_id IN (SELECT value FROM json_each(?))`,
            value,
            JSON.stringify(inside),
          ).n === inside.length,
        { timeoutMs: 30_000, what: `the followed chargers' 513 = ${value} stored` },
      );
    };
    await say('first');
    await waitFor(() => lookups() === outside.length, { what: 'one lookup per charger outside' });
    await waitFor(() => carried(h).size === 2, { what: 'the group carrying the two followed installations' });
    await say('second');
    await say('third');
    // The group's subscription is drained: nothing of the third installation is still to come.
    const ch = h.sim.userGroups.get(group)!.channel;
    await waitFor(() => {
      const q = h.sim.broker.stats(ch.topic, ch.subscription);
      return q.ready === 0 && q.locked === 0;
    });
    expect(lookups()).toBe(outside.length);
    expect(
      h.one<{ n: number }>(
        'SELECT count(*) AS n FROM chargers WHERE id IN (SELECT value FROM json_each(?))',
        JSON.stringify(outside),
      ).n,
    ).toBe(0);
    expect(
      h.one<{ n: number }>(
        "SELECT count(*) AS n FROM charger_state WHERE value IN ('second', 'third') AND charger_id IN (SELECT value FROM json_each(?))",
        JSON.stringify(outside),
      ).n,
    ).toBe(0);
    expect(h.one<{ n: number }>('SELECT count(*) AS n FROM sync_status WHERE installation_id = ?', c).n).toBe(
      0,
    );
    expect(carried(h).has(c)).toBe(false);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('a group outage: its installations go `connecting` and are polled, and after it a re-read; nothing lost', {
    timeout: 90_000,
  }, async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 2 });
    const group = h.sim.addUserGroup();
    const run = h.start({ ZAPTEC_USER_GROUPS: group, LOG_LEVEL: 'debug' });
    await h.connected();
    await everyChargerSays(h, 'before');
    await waitFor(() => carried(h).size === 2, { what: 'the group carrying both' });
    await h.sim.broker.stop();
    await waitFor(
      () => h.one<{ n: number }>("SELECT count(*) AS n FROM sync_status WHERE events = 'connecting'").n === 2,
      { timeoutMs: 30_000, what: 'both installations connecting' },
    );
    const at = Date.now() + 120_000;
    for (const ch of h.sim.fleet.chargers.values()) h.sim.publish(h.sim.fleet.set(ch.id, 513, 'during', at));
    await h.sim.broker.start();
    await h.connected(45_000);
    await waitFor(
      () =>
        h.one<{ n: number }>(
          "SELECT count(*) AS n FROM charger_state WHERE state_id = 513 AND value = 'during'",
        ).n === 4,
      { timeoutMs: 30_000, what: 'what was published during the outage' },
    );
    // The gap's re-read: every charger of both installations read for that reason once the group is back.
    await waitFor(
      () =>
        [...h.sim.fleet.chargers.keys()].every((id) =>
          run
            .output()
            .split('\n')
            .some((l) => l.includes(`"charger":"${id}"`) && l.includes('"reason":"after a live-event gap"')),
        ),
      { timeoutMs: 30_000, what: 'the re-read after the gap' },
    );
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('a refused group (403): its installations get their own subscriptions back, and status says so', {
    timeout: 90_000,
  }, async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 2 });
    const [a, b] = installations(h) as [string, string];
    const group = h.sim.addUserGroup([a, b]);
    const run = h.start({ ZAPTEC_USER_GROUPS: group });
    await h.connected();
    await everyChargerSays(h, 'carried');
    await waitFor(() => carried(h).size === 2 && !ownAttached(h, a), { what: 'the group carrying both' });
    // Access withdrawn, and the key rotated so that the daemon asks for the details again.
    h.sim.userGroups.get(group)!.status = 403;
    h.sim.rotateKey(group);
    await waitFor(() => carried(h).size === 0 && ownAttached(h, a) && ownAttached(h, b), {
      timeoutMs: 45_000,
      what: 'their own subscriptions back',
    });
    await h.connected();
    await everyChargerSays(h, 'own again');
    expect(h.one<{ events: string }>('SELECT events FROM user_groups WHERE id = ?', group).events).toBe(
      'failed',
    );
    const env = { ...h.env, ZAPTEC_USER_GROUPS: group };
    const status = await runCli(['status', '--json'], { env, cwd: h.dir });
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout).problems).toContainEqual(
      expect.stringMatching(
        new RegExp(`user group ${group}: .*answered 403.*its installations use their own`),
      ),
    );
    const doctor = await runCli(['doctor'], { env, cwd: h.dir });
    expect(doctor.code).toBe(1);
    expect(doctor.stdout + doctor.stderr).toMatch(new RegExp(`user group ${group}.*HTTP 403`));
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it("a rotated group key: the group's details are fetched again and events go on", {
    timeout: 60_000,
  }, async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 });
    const group = h.sim.addUserGroup();
    const run = h.start({ ZAPTEC_USER_GROUPS: group });
    await h.connected();
    await everyChargerSays(h, 'before');
    await waitFor(() => carried(h).size === 1, { what: 'the group carrying it' });
    const detailsPath = `/api/userGroups/${group}/messagingConnectionDetails`;
    const fetched = () =>
      h.sim.rest.requests.filter((r) => r.path.toLowerCase() === detailsPath.toLowerCase()).length;
    const before = fetched();
    h.sim.rotateKey(group);
    await everyChargerSays(h, 'after');
    // The new key came from the group's details, fetched again after the broker refused the old one.
    expect(fetched()).toBeGreaterThan(before);
    expect(carried(h).size).toBe(1);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
