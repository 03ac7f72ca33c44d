/**
 * issue 13, in-process and on virtual time: a refused password is a lasting condition (at most one login per
 * 5 minutes, backing off to hourly, one at once on SIGHUP), and background passes own their errors.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CredentialsError } from '../../src/http/errors.js';
import { createLogger } from '../../src/log.js';
import { Fleet } from '../../src/simulator/fleet.js';
import { RestSimulator } from '../../src/simulator/rest.js';
import { readDaemonRow } from '../../src/store/daemon-row.js';
import { openDatabase } from '../../src/store/database.js';
import { InventoryStore } from '../../src/store/inventory.js';
import type { ObservationStore } from '../../src/store/observations.js';
import type { RefreshRequestStore } from '../../src/store/refresh-requests.js';
import { SqliteBudgetLedger } from '../../src/store/sqlite/budget-ledger.js';
import { SyncStatusStore } from '../../src/store/sync-status.js';
import { CredentialRetry } from '../../src/sync/credentials.js';
import { EventStream, installationOwner, type LiveEventsDeps } from '../../src/sync/event-stream.js';
import { HistoryPruner } from '../../src/sync/history-pruner.js';
import { Metrics } from '../../src/sync/metrics.js';
import { Problems } from '../../src/sync/problems.js';
import { RefreshRequests } from '../../src/sync/refresh-requests.js';
import type { Clock } from '../../src/time.js';
import { delay } from '../../src/time.js';
import { createZaptecClient } from '../../src/zaptec/client.js';
import { SteppedClock } from '../clock.js';
import { freePort, tempDir, waitFor } from '../helpers.js';

const quiet = createLogger({ level: 'silent' });
const MIN = 60_000;

describe('refused credentials', () => {
  it('after a password change: one login per 5 minutes backing off to hourly, one at once on SIGHUP, and back at once when the password is', {
    timeout: 120_000,
  }, async () => {
    const clock = new SteppedClock();
    const fleet = new Fleet({ seed: 3, installations: 1, chargersPerInstallation: 2 });
    // Tokens live 10 minutes, so the changed password is met within the first quarter hour.
    const sim = new RestSimulator({ fleet, now: () => clock.now(), tokenLifetimeS: 600 });
    await sim.start();
    const db = openDatabase(join(tempDir(), 'z.db'), { create: true, daemon: true });
    const user = sim.users[0]!;
    const client = createZaptecClient({
      apiUrl: sim.url,
      username: user.username,
      password: user.password,
      requestsPerMinute: 600,
      version: 'test',
      ledger: new SqliteBudgetLedger(db),
      clock,
      log: quiet,
    });
    const problems = new Problems(quiet, clock);
    const retry = new CredentialRetry({ tokens: client.tokens, clock, log: quiet, problems });
    retry.start();
    const chargerId = [...fleet.chargers.keys()][0]!;
    const errors: unknown[] = [];
    // Work that needs a token every 20 s: what refresh requests, lookups and reconciliation add up to.
    const work = () =>
      client.api.state(chargerId, { deadline: clock.now() + 30_000 }).catch((err) => errors.push(err));
    const tokenRequests = () => sim.requests.filter((r) => r.path === '/oauth/token');
    const start = clock.now();
    const runFor = async (ms: number) => {
      const end = clock.now() + ms;
      while (clock.now() < end) {
        await work();
        await clock.runUntil(Math.min(end, clock.now() + 20_000), 2);
      }
    };
    try {
      await runFor(2 * MIN);
      expect(tokenRequests()).toHaveLength(1);
      user.password = 'changed-on-a-sunday';
      await runFor(3 * 60 * MIN);
      const refused = tokenRequests().filter((r) => r.status === 400);
      // The token expired ~9 min in: refused then, and again after 5, 10, 20, 40, then hourly.
      // (Never sooner; a little later when the loaded machine's loopback lags behind the virtual clock.)
      const gaps = refused.slice(1).map((r, i) => (r.at - refused[i]!.at) / MIN);
      gaps.forEach((gap, i) => {
        const planned = [5, 10, 20, 40, 60][i]!;
        expect(gap).toBeGreaterThanOrEqual(planned);
        expect(gap).toBeLessThan(planned + 2);
      });
      expect(refused.length).toBeGreaterThanOrEqual(5);
      expect(refused.length).toBeLessThanOrEqual(6);
      expect(refused[0]!.at - start).toBeLessThan(15 * MIN);
      // Meanwhile the work was answered at once, without a login, naming the refused password.
      expect(errors.length).toBeGreaterThan(400);
      expect(errors.at(-1)).toBeInstanceOf(CredentialsError);
      expect(String((errors.at(-1) as Error).message)).toMatch(
        /refused the username or password.*ZAPTEC_PASSWORD/,
      );
      expect(problems.list().map((p) => p.key)).toEqual(['credentials']);
      expect(problems.list()[0]!.sentence).toMatch(/ZAPTEC_PASSWORD .*SIGHUP/);

      // SIGHUP: one login at once (still refused), and no more than that.
      const before = tokenRequests().length;
      retry.loginNow();
      await clock.runUntil(clock.now() + 1_000, 50);
      await waitFor(() => tokenRequests().length === before + 1);
      await runFor(2 * MIN);
      expect(tokenRequests()).toHaveLength(before + 1);

      // The password comes back: SIGHUP logs in at once, the work goes on, the problem is over.
      user.password = sim.users[0]!.password = 'demo-password';
      retry.loginNow();
      await clock.runUntil(clock.now() + 1_000, 50);
      await waitFor(() => !problems.has('credentials'));
      errors.length = 0;
      await runFor(MIN);
      expect(errors).toEqual([]);
    } finally {
      await retry.stop();
      await client.close();
      await sim.stop();
      db.close();
    }
  });
});

/** Real time, but every wait short: a loop's retries come in milliseconds. */
const hastyClock: Clock = { now: () => Date.now(), sleep: (ms, signal) => delay(Math.min(ms, 20), signal) };

describe('background passes own their errors', () => {
  it('history pruning that fails is a problem, retried, and over when it works again', async () => {
    const problems = new Problems(quiet, hastyClock);
    let failing = true;
    let passes = 0;
    const store = {
      pruneHistory: () => {
        passes++;
        if (failing) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
        return 0;
      },
    } as unknown as ObservationStore;
    const pruner = new HistoryPruner(store, hastyClock, problems, quiet);
    pruner.start();
    try {
      await waitFor(() => passes >= 3, { what: 'pruning retried' });
      expect(problems.list()[0]?.sentence).toMatch(/pruning charger_state_history failed .*disk I\/O error/);
      failing = false;
      await waitFor(() => !problems.has('history'), { what: 'recovered' });
    } finally {
      await pruner.stop();
    }
  });

  it('a live-event supervisor whose own code throws reports it and starts over, never rejecting', async () => {
    const problems = new Problems(quiet, hastyClock);
    const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
    let throws = 2;
    let detailsAsked = 0;
    const deps: LiveEventsDeps = {
      api: {
        userGroupConnectionDetails: async () => {
          throw new Error('no user groups here');
        },
        connectionDetails: async (_id, o) => {
          detailsAsked++;
          await new Promise<void>((resolve) => o?.signal?.addEventListener('abort', () => resolve()));
          throw new Error('stopped');
        },
      },
      batcher: undefined as never,
      syncStatus: new SyncStatusStore(db),
      clock: hastyClock,
      log: quiet,
      endpoint: undefined,
      problems,
      onConnected: () => {
        if (throws-- > 0) throw new Error('the coordinator could not react');
      },
      onGap: () => {},
    };
    const stream = new EventStream(installationOwner('11111111-2222-3333-4444-555555555555', deps), deps);
    stream.start();
    try {
      await waitFor(() => detailsAsked === 1, { what: 'the supervisor started over' });
      expect(problems.list()[0]?.sentence).toMatch(
        /live-event supervision of installation 11111111-.* failed \(the coordinator could not react\); it starts over/,
      );
      expect(throws).toBe(1); // it threw once, and the supervisor went on past it
    } finally {
      await stream.stop();
      db.close();
    }
  });

  it('a refresh-request poll that cannot read the table is a problem, and over when it can', async () => {
    const problems = new Problems(quiet, hastyClock);
    let broken = true;
    const store = {
      dataVersion: () => {
        if (broken)
          throw Object.assign(new Error('database disk image is malformed'), { code: 'SQLITE_CORRUPT' });
        return 1;
      },
      open: () => [],
    } as unknown as RefreshRequestStore;
    const refresh = new RefreshRequests({
      store,
      lookup: undefined as never,
      inventorySync: undefined as never,
      clock: hastyClock,
      log: quiet,
      problems,
    });
    refresh.start();
    try {
      expect(problems.list()[0]?.sentence).toMatch(
        /cannot read refresh_requests \(SQLITE_CORRUPT: database disk image/,
      );
      broken = false;
      await waitFor(() => !problems.has('refresh-requests'), { what: 'recovered at the next poll' });
    } finally {
      await refresh.stop();
    }
  });

  it('/healthz answers 503 with the problems, and keeps answering when the database cannot be read', async () => {
    const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
    const clock: Clock = { now: () => Date.now(), sleep: delay };
    const problems = new Problems(quiet, clock);
    db.prepare(
      "INSERT INTO daemon (id, version, pid, heartbeat_at, schema_version) VALUES (1, 't', 1, ?, 3)",
    ).run(new Date().toISOString());
    const client = createZaptecClient({
      apiUrl: 'http://127.0.0.1:9',
      username: 'u',
      password: 'p',
      requestsPerMinute: 600,
      version: 't',
      ledger: new SqliteBudgetLedger(db),
      clock,
      log: quiet,
    });
    const metrics = new Metrics({
      eventStates: () => new SyncStatusStore(db).all(),
      oldestHeard: () => new InventoryStore(db).oldestHeard(),
      heartbeatAt: () => readDaemonRow(db)?.heartbeat_at ?? null,
      admission: client.admission,
      clock,
      problems,
      events: () => ({ received: 0, applied: 0, deadLettered: 0, reconnects: 0 }),
      stateReads: () => 0,
    });
    const port = await freePort();
    await metrics.start('127.0.0.1', port, quiet);
    try {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      problems.fail('credentials', 'Zaptec refuses the username or password');
      const degraded = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(degraded.status).toBe(503);
      expect(await degraded.text()).toMatch(/refuses the username or password/);
      db.close();
      const broken = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(broken.status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(500);
    } finally {
      await metrics.stop();
      await client.close();
    }
  });
});
