/** issue 7: readiness under a fake NOTIFY_SOCKET, doctor against the simulator, /metrics and /healthz. */
import { describe, expect, it } from 'vitest';
import { freePort, runCli, waitFor } from '../helpers.js';
import { canNotify, listeningSocket } from '../notify-socket.js';
import { liveHarness } from '../sync/live-harness.js';

describe('running as a service', () => {
  it.runIf(canNotify)('tells systemd READY=1, STATUS= and STOPPING=1 through NOTIFY_SOCKET', async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 2 });
    const listener = await listeningSocket();
    try {
      const run = h.start({ NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '20000000' });
      await waitFor(() => listener.lines().some((l) => l.includes('READY=1')), { what: 'READY=1' });
      expect(listener.lines().find((l) => l.includes('READY=1'))).toMatch(
        /STATUS=\d+ installations, \d+ chargers/,
      );
      await waitFor(() => listener.lines().some((l) => l.includes('WATCHDOG=1')), { what: 'WATCHDOG=1' });
      run.child.kill('SIGTERM');
      expect(await run.exited).toEqual({ code: 0, signal: null });
      await waitFor(() => listener.lines().some((l) => l.includes('STOPPING=1')), { what: 'STOPPING=1' });
    } finally {
      listener.child.kill();
    }
  });

  it('doctor says all is well against the simulator, and names a wrong password in one line with exit 1', async () => {
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 1 });
    const good = await runCli(['doctor'], { env: h.env, cwd: h.dir });
    expect(good.stdout).not.toMatch(/FAIL/);
    expect(good.stdout).toMatch(/ok +credentials/);
    expect(good.stdout.match(/ok +live events/g)).toHaveLength(2);
    expect(good.code).toBe(0);
    const bad = await runCli(['doctor'], {
      env: { ...h.env, ZAPTEC_PASSWORD: 'not-the-password' },
      cwd: h.dir,
    });
    expect(bad.code).toBe(1);
    const failures = bad.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    expect(failures).toEqual([expect.stringMatching(/credentials: Zaptec refused the username or password/)]);
    expect(bad.stdout + bad.stderr).not.toContain('not-the-password');
  });

  it('serves the budget per group and window on /metrics, and /healthz', async () => {
    const port = await freePort();
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 3 });
    const run = h.start({ ZAPTEC_METRICS: `127.0.0.1:${port}` });
    await h.connected();
    const text = await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const body = await res.text();
      return body.includes('zaptec_budget_used{group="lists",window="1800s"}') ? body : undefined;
    });
    expect(text).toMatch(/zaptec_budget_limit\{group="global",window="60s"\} 600/);
    expect(text).toMatch(/zaptec_budget_limit\{group="lists",window="1800s"\} 130/);
    expect(text).toMatch(/zaptec_api_requests_total\{group="global",outcome="ok"\} \d+/);
    expect(text).toMatch(/zaptec_events_connected\{installation="[0-9a-f-]+"\} 1/);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
