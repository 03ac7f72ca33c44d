/**
 * issue 9 §5: secrets (password, tokens, SAS keys) appear in no log line, error, database row or
 * status/doctor output, also across a token expiry and a key rotation; the database keeps other users out.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, waitFor } from './helpers.js';
import { liveHarness } from './sync/live-harness.js';

describe('secrets and permissions', () => {
  it('no secret reaches the logs, the database, status or doctor — token expiry and SAS rotation included', {
    timeout: 90_000,
  }, async () => {
    const password = 'S3cret "pass" word/with&symbols=';
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 2 });
    h.sim.rest.users[0]!.password = password;
    const env = { ...h.env, ZAPTEC_PASSWORD: password, LOG_LEVEL: 'trace' };
    const { startCli } = await import('./helpers.js');
    const run = startCli(['run'], { env, cwd: h.dir });
    await h.connected();
    const [inst] = [...h.sim.fleet.installations.keys()];
    const oldKey = h.sim.channel(inst!).key;
    h.sim.rest.expireTokens();
    h.sim.rotateKey(inst!);
    const c = [...h.sim.fleet.chargers.values()].find((x) => x.installationId === inst)!;
    h.sim.publish(h.sim.fleet.set(c.id, 513, '777', Date.now() + 60_000));
    await waitFor(
      () =>
        h.one<{ value: string } | undefined>(
          'SELECT value FROM charger_state WHERE charger_id = ? AND state_id = 513',
          c.id,
        )?.value === '777',
      {
        timeoutMs: 30_000,
      },
    );
    await runCli(['refresh', c.deviceId, '--wait', '10'], { env, cwd: h.dir }); // a call with a fresh token
    const status = await runCli(['status', '--json'], { env, cwd: h.dir });
    const doctor = await runCli(['doctor'], { env, cwd: h.dir });
    run.child.kill('SIGTERM');
    await run.exited;
    const secrets = [
      password,
      oldKey,
      ...[...h.sim.fleet.installations.keys()].map((i) => h.sim.channel(i).key),
      ...h.sim.rest.issuedTokens,
    ];
    expect(h.sim.rest.issuedTokens.length).toBeGreaterThanOrEqual(2);
    const files = readdirSync(h.dir).filter((f) => f.startsWith('zaptec.db'));
    const haystacks: [string, string][] = [
      ['run output', run.output()],
      ['status', status.stdout + status.stderr],
      ['doctor', doctor.stdout + doctor.stderr],
      ...files.map((f) => [f, readFileSync(join(h.dir, f)).toString('latin1')] as [string, string]),
    ];
    for (const [where, text] of haystacks) {
      for (const s of secrets) {
        for (const form of [s, encodeURIComponent(s), JSON.stringify(s).slice(1, -1)]) {
          expect(text.includes(form), `${where} holds a secret`).toBe(false);
        }
      }
    }
    expect(run.output().split('\n').length).toBeGreaterThan(5); // the logs were looked at, not empty
  });

  it('creates the database 0640, so other users cannot read it', async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 1 }, { ZAPTEC_EVENTS: 'off' });
    const run = h.start();
    await waitFor(() => {
      try {
        return h.one<{ pid: number }>('SELECT pid FROM daemon').pid;
      } catch {
        return false;
      }
    });
    expect(statSync(h.dbPath).mode & 0o777).toBe(0o640);
    run.child.kill('SIGTERM');
    await run.exited;
  });
});
