import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CONTRACT_VARIABLES } from '../contract.js';
import { cleanEnv, runCli, startCli, tempDir, waitFor } from '../helpers.js';

const C = '93d603a7-ff53-4ed8-8dd6-f79c94819458';

describe('zaptec-sync run', () => {
  it.each([
    ['ZAPTEC_REQUESTS_PER_MINUTE', '5000'],
    ['ZAPTEC_EVENTS', 'maybe'],
    ['ZAPTEC_INVENTORY_CRON', '61 * * * *'],
    ['ZAPTEC_USER_GROUPS', 'fleet-one'],
    ['ZAPTEC_SESSIONS', 'yes'],
    ['ZAPTEC_SESSIONS_DAYS', '-1'],
    ['ZAPTEC_SESSIONS_PERSONAL_DATA', 'maybe'],
    ['ZAPTEC_RECONCILE_MAX_MINUTES', '0'],
  ])('exits 78 with one line naming %s', async (variable, value) => {
    const dir = tempDir();
    const r = await runCli(['run'], {
      cwd: dir,
      env: cleanEnv({ ZAPTEC_USERNAME: 'u', ZAPTEC_PASSWORD: 'secret-pw', [variable]: value }),
    });
    expect(r.code).toBe(78);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(variable);
    expect(r.stdout + r.stderr).not.toContain('secret-pw');
  });

  it('takes .env.example as it is: every variable of the contract, and exit 78 naming the missing user', async () => {
    const example = new URL('../../.env.example', import.meta.url).pathname;
    const text = readFileSync(example, 'utf8');
    for (const variable of CONTRACT_VARIABLES) expect(text).toMatch(new RegExp(`^${variable}=`, 'm'));
    const r = await runCli(['run', '--env-file', example], { cwd: tempDir(), env: cleanEnv() });
    expect(r.code).toBe(78);
    expect(r.stderr.trim()).toMatch(/^[^\n]*ZAPTEC_USERNAME[^\n]*$/);
  });

  it('exits 78 without credentials', async () => {
    const r = await runCli(['run'], { cwd: tempDir(), env: cleanEnv() });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('ZAPTEC_USERNAME');
  });

  it('keeps a fresh heartbeat and stops cleanly on SIGTERM, leaving a readable database', async () => {
    const dir = tempDir();
    const db = join(dir, 'z.db');
    const env = cleanEnv({
      ZAPTEC_USERNAME: 'u',
      ZAPTEC_PASSWORD: 'secret-pw',
      ZAPTEC_DB: db,
      ZAPTEC_API_URL: 'http://127.0.0.1:9',
      ZAPTEC_EVENTS: 'off',
    });
    const run = startCli(['run'], { env, cwd: dir });
    const first = await waitFor(
      () => {
        const r = new Database(db, { readonly: true, fileMustExist: true });
        try {
          return r.prepare('SELECT pid, heartbeat_at FROM daemon').get() as {
            pid: number;
            heartbeat_at: string;
          };
        } finally {
          r.close();
        }
      },
      { what: 'the daemon row' },
    );
    expect(first.pid).toBe(run.child.pid);
    const status = await runCli(['status', '--json'], { env, cwd: dir });
    const report = JSON.parse(status.stdout);
    expect(report).toMatchObject({ heartbeat_at: expect.any(String), installations: expect.any(Array) });
    expect(Date.now() - Date.parse(report.heartbeat_at)).toBeLessThan(10_000);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.output()).not.toContain('secret-pw');
    const after = new Database(db, { readonly: true });
    expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(after.prepare('SELECT stopped_at FROM daemon').get()).toMatchObject({
      stopped_at: expect.any(String),
    });
    after.close();
    const stale = await runCli(['status'], { env, cwd: dir });
    expect(stale.code).toBe(1);
  });
});

describe('database commands', () => {
  function seeded() {
    const dir = tempDir();
    const path = join(dir, 'z.db');
    const env = cleanEnv({ ZAPTEC_DB: path });
    return { dir, path, env };
  }

  it('status exits 2 without a database and never creates one', async () => {
    const { path, env, dir } = seeded();
    const r = await runCli(['status'], { env, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no database');
    const { existsSync } = await import('node:fs');
    expect(existsSync(path)).toBe(false);
  });

  it('migrate is idempotent, status then says the daemon never ran', async () => {
    const { env, dir } = seeded();
    const a = await runCli(['migrate'], { env, cwd: dir });
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/schema version \d+/);
    const b = await runCli(['migrate'], { env, cwd: dir });
    expect(b.code).toBe(0);
    expect((await runCli(['status'], { env, cwd: dir })).code).toBe(2);
  });

  it('state finds a charger by id or serial, with names, and exits 4 for an unknown one', async () => {
    const { path, env, dir } = seeded();
    await runCli(['migrate'], { env, cwd: dir });
    const db = new Database(path);
    db.prepare(
      `INSERT INTO chargers (id, installation_id, device_id, name, device_type, data, first_seen_at, last_seen_at)
       VALUES (?, NULL, 'ZAP049387', 'Garage', 4, '{}', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')`,
    ).run(C);
    db.prepare(
      `INSERT INTO charger_state VALUES (?, 710, 'ChargerOperationMode', '3', '2024-01-05T13:10:10.837Z', '2024-01-05T13:10:11.000Z', 'event')`,
    ).run(C);
    db.close();
    const bySerial = await runCli(['state', 'zap049387'], { env, cwd: dir });
    expect(bySerial.code).toBe(0);
    expect(bySerial.stdout).toContain('ChargerOperationMode');
    expect(bySerial.stdout).toMatch(/ChargerOperationMode\s+3 \(Connected_Charging\)\s/);
    const byId = await runCli(['state', C, '--json'], { env, cwd: dir });
    expect(JSON.parse(byId.stdout).states[0]).toMatchObject({
      state_id: 710,
      value: '3',
      meaning: 'Connected_Charging',
      source: 'event',
    });
    expect((await runCli(['state', 'ZAP000000'], { env, cwd: dir })).code).toBe(4);
  });

  it('refresh queues a row, and --wait reports the outcome or times out with 5', async () => {
    const { env, dir } = seeded();
    await runCli(['migrate'], { env, cwd: dir });
    const queued = await runCli(['refresh', 'ZAP049387'], { env, cwd: dir });
    expect(queued.code).toBe(0);
    const timedOut = await runCli(['refresh', '--wait', '0.3'], { env, cwd: dir });
    expect(timedOut.code).toBe(5);
    // The requests live in the control database beside it (CONTRACT §10).
    const db = new Database(join(dir, 'control.db'));
    const rows = db.prepare('SELECT id, charger FROM refresh_requests ORDER BY id').all();
    expect(rows).toEqual([
      { id: 1, charger: 'ZAP049387' },
      { id: 2, charger: null },
    ]);
    // Play the daemon: answer the next request as soon as it appears.
    const waiting = runCli(['refresh', 'ZAP999999', '--wait', '10'], { env, cwd: dir });
    await waitFor(() => db.prepare('SELECT id FROM refresh_requests WHERE id = 3').get(), {
      what: 'request 3',
    });
    db.prepare(
      "UPDATE refresh_requests SET outcome = 'not_found', detail = 'no charger with that serial', handled_at = '2024-01-01T00:00:00.000Z' WHERE id = 3",
    ).run();
    const r = await waiting;
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('not_found');
    db.close();
  });

  it('answers an unknown command with usage and exit 2', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage');
  });
});
