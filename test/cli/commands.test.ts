/**
 * CONTRACT §10 through the built CLI, against the simulator with the real Service Bus SDK: `command` and
 * `current` with each outcome, Zaptec's rules kept by the daemon (no-ops not sent, 528/527 never retried, an
 * installation's current at most every 15 minutes, the newest request winning), and commands off by default.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { freePort, runCli, waitFor } from '../helpers.js';
import { liveHarness } from '../sync/live-harness.js';

async function setup(env: Record<string, string> = { ZAPTEC_COMMANDS: 'on' }, chargersPerInstallation = 2) {
  const h = await liveHarness({ installations: 2, chargersPerInstallation }, env);
  const run = h.start();
  await h.connected();
  await waitFor(
    () => h.one<{ n: number }>('SELECT count(*) AS n FROM chargers').n === 2 * chargersPerInstallation,
    { what: 'the inventory' },
  );
  const [a, b] = [...h.sim.fleet.chargers.values()];
  const cli = (...args: string[]) => runCli(args, { env: h.env, cwd: h.dir });
  /** The charger's state as Zaptec has it, pushed on the bus, and stored by the daemon. */
  const charging = async (id: string) => {
    const at = Date.now();
    h.sim.publish(h.sim.fleet.set(id, 718, '0', at));
    h.sim.publish(h.sim.fleet.set(id, 710, '3', at));
    await waitFor(
      () =>
        h.one<{ value: string } | undefined>(
          'SELECT value FROM charger_state WHERE charger_id = ? AND state_id = 710',
          id,
        )?.value === '3',
      { what: 'charging stored' },
    );
  };
  const posts = (pattern: RegExp) => h.sim.commands.received.filter((r) => pattern.test(r.path)).length;
  const control = () => new Database(join(h.dir, 'control.db'), { readonly: true });
  return { h, run, a: a!, b: b!, cli, charging, posts, control };
}

describe('commands through the daemon', () => {
  it('are off by default: refused (exit 3), nothing sent, counted on /metrics', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const t = await setup({ ZAPTEC_METRICS: `127.0.0.1:${port}` });
    await t.charging(t.a.id);
    const r = await t.cli('command', t.a.deviceId, 'pause', '--wait', '10');
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^refused: commands are off \(ZAPTEC_COMMANDS=off\)/);
    expect(t.posts(/sendCommand/)).toBe(0);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^zaptec_commands_total\{action="pause",outcome="refused"\} 1$/m);
    t.run.child.kill('SIGTERM');
    expect((await t.run.exited).code).toBe(0);
  });

  it('pause and resume confirmed by the pushed change; a no-op not sent; a 528 rejected once; restart and deauthorize', {
    timeout: 120_000,
  }, async () => {
    const t = await setup();
    await t.charging(t.a.id);
    const started = Date.now();
    const pause = await t.cli('command', t.a.deviceId, 'pause', '--wait', '30');
    expect(pause.stdout.trim()).toBe('confirmed');
    expect(pause.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(t.posts(/sendCommand\/506$/)).toBe(1);
    // Paused (718 is 1): a second pause would change nothing and is not sent.
    const again = await t.cli('command', t.a.deviceId, 'pause', '--wait', '10');
    expect(again.code).toBe(3);
    expect(again.stdout).toMatch(/^unnecessary: /);
    expect(t.posts(/sendCommand\/506$/)).toBe(1);
    const resume = await t.cli('command', t.a.id, 'resume', '--wait', '30');
    expect(resume.stdout.trim()).toBe('confirmed');
    expect(t.posts(/sendCommand\/507$/)).toBe(1);
    // The stored state says charging, Zaptec's does not (changed without a push): 528, rejected, never retried.
    await t.charging(t.b.id);
    t.h.sim.fleet.set(t.b.id, 710, '1', Date.now());
    const rejected = await t.cli('command', t.b.deviceId, 'pause', '--wait', '30');
    expect(rejected.code).toBe(6);
    expect(rejected.stdout).toMatch(/^rejected: Zaptec rejected it: 528/);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(t.posts(new RegExp(`${t.b.id}/sendCommand/506$`))).toBe(1);
    // Restart: the charger goes offline and online again (-2).
    const restart = await t.cli('command', t.a.deviceId, 'restart', '--wait', '30');
    expect(restart.stdout.trim()).toBe('confirmed');
    // Deauthorize: Zaptec answers 500/528 although it works; confirmed by the charger leaving 3.
    await t.charging(t.a.id);
    const deauth = await t.cli('command', t.a.deviceId, 'deauthorize', '--wait', '30');
    expect(deauth.stdout).toMatch(/^confirmed/);
    expect(deauth.code).toBe(0);
    // Unknown charger: 4.
    expect((await t.cli('command', 'ZAP999999', 'pause', '--wait', '10')).code).toBe(4);
    // Every command: who asked, in the row and in one log line each.
    const c = t.control();
    const rows = c.prepare('SELECT action, requested_by, status FROM commands ORDER BY id').all() as {
      requested_by: string;
      status: string;
    }[];
    c.close();
    expect(rows.every((r) => r.requested_by && r.status === 'done')).toBe(true);
    t.run.child.kill('SIGTERM');
    expect((await t.run.exited).code).toBe(0);
    const lines = t.run
      .output()
      .split('\n')
      .filter((l) => l.includes('"command":'));
    expect(lines.filter((l) => /: (confirmed|unnecessary|rejected|not_found)"/.test(l))).toHaveLength(
      rows.length,
    );
  });

  it("an installation's current: confirmed; then at most once per 15 minutes, the newest request winning; 527 under APM; above MaxCurrent refused", {
    timeout: 120_000,
  }, async () => {
    const t = await setup();
    const [first, second] = [...t.h.sim.fleet.installations.keys()];
    const set = await t.cli('current', first!, '16', '--wait', '40');
    expect(set.stdout.trim()).toBe('confirmed');
    expect(t.h.sim.fleet.installations.get(first!)!.availableCurrent).toBe(16);
    // Judged against what Zaptec took, not the inventory pass before it (32 A): 16 again is a no-op.
    const same = await t.cli('current', first!, '16', '--wait', '5');
    expect(same.code).toBe(3);
    expect(same.stdout).toMatch(/^unnecessary: the installation's available current is 16 A already/);
    // Two more within 15 minutes (32 A is a change now): the first waits and is superseded by the second,
    // which waits (not sent).
    const older = await t.cli('current', first!, '32');
    expect(older.code).toBe(0);
    const newer = await t.cli('current', first!, '12,12,12', '--wait', '3');
    expect(newer.code).toBe(5); // still waiting for the 15-minute rule
    const c = t.control();
    const rows = c
      .prepare(
        "SELECT value, status, outcome, detail FROM commands WHERE action = 'available_current' ORDER BY id",
      )
      .all() as { value: string; status: string; outcome: string | null; detail: string | null }[];
    c.close();
    expect(rows[2]).toMatchObject({ value: '32', status: 'done', outcome: 'superseded' });
    expect(rows[3]).toMatchObject({ value: '12,12,12', status: 'pending', outcome: null });
    expect(rows[3]!.detail).toMatch(/^waits until \d{4}-.*15 minutes/);
    expect(t.posts(/\/update$/)).toBe(1);
    // Under APM (Zaptec Sense) Zaptec refuses with 527: rejected, never retried.
    t.h.sim.fleet.installations.get(second!)!.apm = true;
    const apm = await t.cli('current', second!, '20', '--wait', '30');
    expect(apm.code).toBe(6);
    expect(apm.stdout).toMatch(/^rejected: Zaptec rejected it: 527/);
    // Above the installation's MaxCurrent (32 A): refused before sending.
    const high = await t.cli('current', second!, '40', '--wait', '10');
    expect(high.code).toBe(3);
    expect(high.stdout).toMatch(/^refused: 40 A is above the installation's MaxCurrent of 32 A/);
    expect(t.posts(new RegExp(`${second}/update$`))).toBe(1);
    // status shows what is pending.
    const status = JSON.parse((await t.cli('status', '--json')).stdout) as {
      counts: { pending_commands: number };
      commands: { value: string }[];
    };
    expect(status.counts.pending_commands).toBe(1);
    expect(status.commands[0]!.value).toBe('12,12,12');
    t.run.child.kill('SIGTERM');
    expect((await t.run.exited).code).toBe(0);
  });

  it('a command while background work has spent the budget is sent at once, from the share kept for commands, before every waiting read; nothing gets a 429', {
    timeout: 120_000,
  }, async () => {
    // 40 chargers' first state reads at 20 calls a minute: two minutes of reads waiting for the budget.
    const t = await setup({ ZAPTEC_COMMANDS: 'on', ZAPTEC_REQUESTS_PER_MINUTE: '20' }, 20);
    const stateReads = () =>
      t.h.sim.rest.requests.filter((r) => /^\/api\/chargers\/[^/]+\/state$/.test(r.path));
    await waitFor(
      () =>
        t.h.one<{ used: number; limit: number }>(
          `SELECT used, "limit" FROM api_budget WHERE "group" = 'global' AND kind = 'sliding' AND window_seconds = 60`,
        ).used >= 19,
      { timeoutMs: 30_000, what: 'the minute budget spent' },
    );
    const readsBefore = stateReads().length;
    expect(readsBefore).toBeLessThan(40); // reads still waiting
    await t.charging(t.a.id);
    const asked = Date.now();
    const r = await t.cli('command', t.a.deviceId, 'pause', '--wait', '60');
    expect(r.stdout).toBe('confirmed\n');
    const sent = t.h.sim.commands.received.find((x) => x.path.endsWith('/sendCommand/506'))!;
    // 5 % of each window is kept for commands (one call of 20): it goes at once, before any waiting read.
    expect(sent.at - asked).toBeLessThan(15_000);
    const readsUntilSent = stateReads().filter((x) => x.at <= sent.at).length;
    expect(readsUntilSent - readsBefore).toBeLessThanOrEqual(1); // one already admitted may land first
    expect(t.h.sim.rest.requests.filter((x) => x.status === 429)).toEqual([]);
    t.run.child.kill('SIGTERM');
    expect((await t.run.exited).code).toBe(0);
  });
});
