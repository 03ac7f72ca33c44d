/**
 * issue 13, against the real `run` process: months unattended. A failing hourly pass, a refused password, a
 * consumer holding the write lock for a minute and a power cut must not take the daemon down or lose data.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CLI, cleanEnv, freePort, runCli, tempDir, waitFor } from './helpers.js';
import { canNotify, listeningSocket } from './notify-socket.js';
import { harness } from './sync/harness.js';
import { liveHarness } from './sync/live-harness.js';

/** `status --json`: its exit code and `problems`. */
async function status(
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ code: number | null; problems: string[] }> {
  const r = await runCli(['status', '--json'], { env, cwd });
  return { code: r.code, problems: (JSON.parse(r.stdout) as { problems: string[] }).problems };
}

const controlPath = (dbPath: string) => join(dirname(dbPath), 'control.db');

/** A refresh request's answer, read from the control database. */
function refreshAnswer(
  dbPath: string,
  id: number,
): { outcome: string | null; detail: string | null } | undefined {
  const db = new Database(controlPath(dbPath), { readonly: true });
  try {
    return db.prepare('SELECT outcome, detail FROM refresh_requests WHERE id = ?').get(id) as
      | { outcome: string | null; detail: string | null }
      | undefined;
  } finally {
    db.close();
  }
}

/** A refresh request, as a consumer writes it into the control database beside the main one. */
function addRefreshRequest(dbPath: string, charger: string | null): number {
  const db = new Database(controlPath(dbPath));
  try {
    return Number(
      db.prepare('INSERT INTO refresh_requests (charger) VALUES (?)').run(charger).lastInsertRowid,
    );
  } finally {
    db.close();
  }
}

describe('background work that fails', () => {
  it('a failing scheduled inventory pass, SIGHUP and a lookup while the lists answer 503: reported in status, and the process lives', {
    timeout: 90_000,
  }, async () => {
    const h = await harness(
      { installations: 2, chargersPerInstallation: 2 },
      // A scheduled pass every second: it joins the failing pass in flight (until now: an unhandled rejection).
      { ZAPTEC_INVENTORY_CRON: '* * * * * *' },
    );
    h.sim.faults.push({ path: /^\/api\/(installation|chargers)$/i, status: 503, times: 10_000 });
    const run = h.start();
    await waitFor(() => h.sim.requests.filter((r) => r.status === 503).length >= 3, {
      timeoutMs: 30_000,
      what: 'the lists failing',
    });
    await waitFor(
      async () => (await status(h.env, h.dir)).problems.some((p) => /inventory pass failed/.test(p)),
      {
        timeoutMs: 30_000,
        what: 'the failing pass in status',
      },
    );
    run.child.kill('SIGHUP');
    const id = addRefreshRequest(h.dbPath, 'ZAP999999');
    await waitFor(() => refreshAnswer(h.dbPath, id)?.outcome, {
      timeoutMs: 45_000,
      what: 'the lookup answered',
    });
    // Several more cron ticks and heartbeats: still alive.
    const beat = h.one<{ heartbeat_at: string }>('SELECT heartbeat_at FROM daemon').heartbeat_at;
    await waitFor(
      () => h.one<{ heartbeat_at: string }>('SELECT heartbeat_at FROM daemon').heartbeat_at > beat,
      {
        what: 'a later heartbeat',
      },
    );
    expect(run.child.exitCode).toBeNull();
    const s = await status(h.env, h.dir);
    expect(s.code).toBe(1);
    expect(s.problems.find((p) => /inventory pass failed/.test(p))).toMatch(
      /503.*the stored inventory is kept/,
    );
    expect(run.output()).not.toMatch(/unhandled rejection|uncaught exception/);
    // Logged once when it started failing, not once per pass.
    expect(run.output().match(/the inventory pass failed/g)?.length).toBe(1);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });
});

describe('state reads that fail', () => {
  it('are a problem in status while the daemon goes on, each charger tried again later', {
    timeout: 60_000,
  }, async () => {
    const h = await harness({ installations: 1, chargersPerInstallation: 3 });
    // 403: a lasting answer, not retried (a 5xx storm shows as the breaker's blocked budget group instead).
    h.sim.faults.push({ path: /\/state$/, status: 403, times: 10_000 });
    const run = h.start();
    await waitFor(
      async () => (await status(h.env, h.dir)).problems.some((p) => /state reads are failing/.test(p)),
      {
        timeoutMs: 45_000,
        what: 'failing state reads in status',
      },
    );
    expect(run.child.exitCode).toBeNull();
    expect(run.output().match(/state reads are failing/g)?.length).toBe(1);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });
});

describe('a refused password', () => {
  it('is one token request, not a retry loop: status says so, refresh requests are answered failed, SIGHUP tries once more', {
    timeout: 60_000,
  }, async () => {
    const h = await harness(
      { installations: 1, chargersPerInstallation: 2 },
      { ZAPTEC_PASSWORD: 'changed-on-sunday' },
    );
    const run = h.start();
    const tokenRequests = () => h.sim.requests.filter((r) => r.path === '/oauth/token');
    await waitFor(async () => (await status(h.env, h.dir)).problems.some((p) => /ZAPTEC_PASSWORD/.test(p)), {
      timeoutMs: 20_000,
      what: 'refused credentials in status',
    });
    const serial = [...h.fleet.chargers.values()][0]!.deviceId;
    const id = addRefreshRequest(h.dbPath, serial);
    const answer = await waitFor(
      () => (refreshAnswer(h.dbPath, id)?.outcome ? refreshAnswer(h.dbPath, id) : undefined),
      { what: 'the refresh request answered' },
    );
    expect(answer.outcome).toBe('failed');
    expect(answer.detail).toMatch(/refused the username or password/);
    expect(tokenRequests()).toHaveLength(1);
    const s = await status(h.env, h.dir);
    expect(s.code).toBe(1);
    expect(s.problems.find((p) => /refuses the username or password/.test(p))).toMatch(
      /ZAPTEC_PASSWORD.*SIGHUP/,
    );
    run.child.kill('SIGHUP');
    await waitFor(() => tokenRequests().length === 2, { what: 'one login on SIGHUP' });
    expect(run.child.exitCode).toBeNull();
    expect(run.output()).not.toContain('changed-on-sunday');
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    expect(tokenRequests()).toHaveLength(2);
  });
});

/** The largest gap between consecutive times, ms. */
function largestGap(times: number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

/** One gauge from Prometheus text. */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

describe('a consumer holding the write lock for 60 s while 200 observations a second arrive', () => {
  it.runIf(canNotify)(
    'keeps pinging the watchdog, never stalls the event loop, says so in status and /healthz, and loses nothing',
    {
      timeout: 180_000,
    },
    async () => {
      const h = await liveHarness({ installations: 2, chargersPerInstallation: 5 });
      const listener = await listeningSocket();
      const port = await freePort();
      try {
        const run = h.start({
          NOTIFY_SOCKET: listener.path,
          WATCHDOG_USEC: '20000000',
          ZAPTEC_METRICS: `127.0.0.1:${port}`,
        });
        await h.connected();
        const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        await metrics(); // prom-client's event-loop histogram restarts at each scrape
        const chargers = [...h.sim.fleet.chargers.values()];
        const t0 = Date.now() + 120_000;
        let sent = 0;
        const publisher = setInterval(() => {
          for (let i = 0; i < 10; i++, sent++)
            h.sim.publish(
              h.sim.fleet.set(chargers[sent % chargers.length]!.id, 513, String(sent), t0 + sent),
            );
        }, 50);
        const blocker = new Database(h.dbPath);
        const heldFrom = Date.now();
        blocker.exec('BEGIN IMMEDIATE');
        try {
          // Past the 30 s heartbeat limit: the daemon runs, and says it cannot write.
          const s = await waitFor(
            async () => {
              const r = await status(h.env, h.dir);
              return r.problems.some((p) => /runs but cannot write the database/.test(p)) ? r : undefined;
            },
            { timeoutMs: 50_000, what: 'status naming the unwritable database' },
          );
          expect(s.code).toBe(1);
          const health = await fetch(`http://127.0.0.1:${port}/healthz`);
          expect(health.status).toBe(503);
          expect(await health.text()).toMatch(/cannot write the database.*write lock/);
          while (Date.now() - heldFrom < 60_000) await new Promise((r) => setTimeout(r, 500));
        } finally {
          const heldTo = Date.now();
          blocker.exec('ROLLBACK');
          blocker.close();
          clearInterval(publisher);
          const pings = listener
            .times('WATCHDOG=1')
            .filter((t) => t >= heldFrom - 10_000 && t <= heldTo + 10_000);
          // WatchdogSec=20s: a ping at least every 10 s, lock or no lock (every 5 s, in fact).
          expect(largestGap([heldFrom, ...pings, heldTo])).toBeLessThanOrEqual(10_000);
        }
        const lagMax = gauge(await metrics(), 'nodejs_eventloop_lag_max_seconds');
        // The target is 100 ms (BENCHMARKS.md measures it); this bound only has to catch 5 s busy waits.
        expect(lagMax).toBeLessThan(1);
        const committed = () =>
          h.one<{ n: number }>(
            'SELECT count(*) AS n FROM charger_state_history WHERE state_id = 513 AND observed_at >= ?',
            new Date(t0).toISOString(),
          ).n;
        // Within 5 s of the lock's end the held messages are committed (event-batcher.test.ts); the rest is the
        // backlog's drain. A failure says where the missing ones are, and what the daemon said.
        await waitFor(() => committed() === sent, { timeoutMs: 90_000, what: 'the backlog drained' }).catch(
          (err: Error) => {
            const dead = [...h.sim.fleet.installations.keys()].map((id) => {
              const c = h.sim.channel(id);
              return h.sim.broker.stats(c.topic, c.subscription).deadLetters.length;
            });
            throw new Error(
              `${err.message}: ${committed()} of ${sent} committed; broker ${JSON.stringify(h.sim.broker.busy())}, ` +
                `dead letters ${dead.join('+')}; the daemon's last lines:\n${run.output().split('\n').slice(-15).join('\n')}`,
            );
          },
        );
        expect(sent).toBeGreaterThan(10_000);
        await waitFor(async () => (await status(h.env, h.dir)).code === 0, {
          timeoutMs: 30_000,
          what: 'healthy again',
        });
        expect(run.child.exitCode).toBeNull();
        run.child.kill('SIGTERM');
        expect(await run.exited).toEqual({ code: 0, signal: null });
      } finally {
        listener.child.kill();
      }
    },
  );
});

describe('zaptec_api_429_total', () => {
  it('is a counter: it never goes down, whatever becomes of the budget rows behind it', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const h = await harness(
      { installations: 1, chargersPerInstallation: 2 },
      { ZAPTEC_METRICS: `127.0.0.1:${port}` },
    );
    h.sim.faults.push({
      path: /^\/api\/installation$/,
      status: 429,
      headers: { 'retry-after': '1' },
      times: 1,
    });
    const run = h.start();
    const total = async () =>
      gauge(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'zaptec_api_429_total');
    await waitFor(async () => (await total()) === 1, { what: 'one 429 counted' });
    // Admission forgets old requests after ~31 minutes: here, at once.
    const db = new Database(h.dbPath);
    db.pragma('busy_timeout = 5000');
    db.prepare('DELETE FROM api_requests').run();
    db.close();
    expect(await total()).toBe(1);
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
  });
});

describe('a power cut', () => {
  const hasStrace = existsSync('/usr/bin/strace');
  it.runIf(hasStrace)(
    'finds every completed message synced first (an fsync of the WAL between delivery and completion), and every request budget record before its send',
    {
      timeout: 90_000,
    },
    async () => {
      const h = await liveHarness({ installations: 1, chargersPerInstallation: 4 });
      const trace = join(h.dir, 'strace.txt');
      const child = spawn(
        'strace',
        ['-f', '-ttt', '-y', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, CLI, 'run'],
        { env: h.env, cwd: h.dir, stdio: 'ignore' },
      );
      const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      try {
        await h.connected(60_000);
        const channel = h.sim.channel([...h.sim.fleet.installations.keys()][0]!);
        const from = h.sim.broker.completions(channel.topic, channel.subscription).length;
        const chargers = [...h.sim.fleet.chargers.values()];
        const t0 = Date.now() + 60_000;
        for (let i = 0; i < 150; i++) {
          h.sim.publish(h.sim.fleet.set(chargers[i % chargers.length]!.id, 513, String(i), t0 + i));
          if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20));
        }
        await waitFor(
          () => h.sim.broker.completions(channel.topic, channel.subscription).length >= from + 150,
          {
            timeoutMs: 30_000,
            what: '150 completions',
          },
        );
        // The daemon itself stops (strace ends with it): its pid is in the database.
        process.kill(h.one<{ pid: number }>('SELECT pid FROM daemon').pid, 'SIGTERM');
        expect(await exited).toEqual({ code: 0, signal: null });
        const walSyncs = readFileSync(trace, 'utf8')
          .split('\n')
          .filter((l) => /\bf(data)?sync\(\d+<[^>]*zaptec\.db-wal>\) = 0/.test(l))
          .map((l) => Math.round(Number(l.split(/\s+/)[1]) * 1000));
        const completions = h.sim.broker.completions(channel.topic, channel.subscription).slice(from);
        expect(completions).toHaveLength(150);
        const unsynced = completions.filter(
          (c) => !walSyncs.some((t) => t >= c.lockedAt && t <= c.completedAt),
        );
        expect(unsynced).toEqual([]);
        // And every API request's budget record was synced before it was sent (within a second on loopback).
        const requests = h.sim.rest.requests.map((r) => r.at);
        expect(requests.length).toBeGreaterThan(3);
        const unrecorded = requests.filter((at) => !walSyncs.some((t) => t <= at && t >= at - 1_000));
        expect(unrecorded).toEqual([]);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  );
});

describe('demo', () => {
  it('leaves no -wal or -shm after Ctrl-C in a terminal (the whole process group gets SIGINT)', {
    timeout: 60_000,
  }, async () => {
    const dir = tempDir();
    const demo = spawn(process.execPath, [CLI, 'demo', '--rate', '10'], {
      cwd: dir,
      env: cleanEnv(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => demo.on('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(() => /API: \d+ calls in the last minute/.test(out), {
      timeoutMs: 40_000,
      what: 'the live view',
    });
    process.kill(-demo.pid!, 'SIGINT');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(existsSync(join(dir, 'zaptec-demo.db'))).toBe(true);
    expect(existsSync(join(dir, 'zaptec-demo.db-wal'))).toBe(false);
    expect(existsSync(join(dir, 'zaptec-demo.db-shm'))).toBe(false);
  });
});
