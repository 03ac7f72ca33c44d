/**
 * CONTRACT §9 "status, state, sessions and refresh work against it": what a real daemon wrote into SQLite,
 * copied into a PostgreSQL schema, reads the same through the built CLI — byte for byte where nothing depends
 * on the moment of reading. And consumers ask through PostgreSQL: `refresh` and `command` rows, `--wait`.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runCli, waitFor } from '../helpers.js';
import { freshSchema, pgAdmin, pgEnv, pgUrl } from '../pg.js';
import { copyToPostgres } from '../pg-copy.js';
import { harness } from '../sync/harness.js';

describe.runIf(pgUrl)('the commands that read, against PostgreSQL', () => {
  const schema = freshSchema();
  let sqlite: NodeJS.ProcessEnv;
  let postgres: NodeJS.ProcessEnv;
  let serial: string;
  let dir: string;

  beforeAll(async () => {
    const h = await harness({ installations: 2, chargersPerInstallation: 3, pastDays: 2 });
    const run = h.start();
    await waitFor(
      () =>
        h.one<{ n: number }>('SELECT count(DISTINCT charger_id) AS n FROM charger_state').n === 6 &&
        h.one<{ n: number }>('SELECT count(*) AS n FROM charge_history_passes').n === 2,
      { timeoutMs: 30_000, what: 'state and charge history of every charger' },
    );
    expect(await h.stop(run)).toEqual({ code: 0, signal: null });
    // The harness's directory goes after this hook: the files are kept for the whole file.
    dir = mkdtempSync(join(tmpdir(), 'zaptec-pg-read-'));
    for (const f of ['zaptec.db', 'control.db']) copyFileSync(join(h.dir, f), join(dir, f));
    sqlite = { ...h.env, ZAPTEC_DB: join(dir, 'zaptec.db') };
    postgres = cleanEnv(pgEnv(schema));
    expect((await runCli(['migrate'], { env: postgres, cwd: dir })).code).toBe(0);
    await copyToPostgres([join(dir, 'zaptec.db'), join(dir, 'control.db')], schema);
    serial = h.one<{ device_id: string }>('SELECT device_id FROM chargers ORDER BY id LIMIT 1').device_id;
  }, 90_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const both = async (args: string[]) => {
    const [a, b] = await Promise.all([
      runCli(args, { env: sqlite, cwd: dir }),
      runCli(args, { env: postgres, cwd: dir }),
    ]);
    return { sqlite: a, postgres: b };
  };

  it('state: the same table and JSON, by serial or id', async () => {
    for (const args of [
      ['state', serial],
      ['state', serial.toLowerCase(), '--json'],
    ]) {
      const r = await both(args);
      expect(r.postgres.stderr).toBe('');
      expect(r.postgres.code).toBe(0);
      expect(r.postgres.stdout).toBe(r.sqlite.stdout);
    }
    const unknown = await both(['state', 'ZAP999999']);
    expect(unknown.postgres.code).toBe(4);
    expect(unknown.postgres.stderr).toBe(unknown.sqlite.stderr);
  });

  it('sessions: the same rows in every format and filter', async () => {
    for (const args of [
      ['sessions'],
      ['sessions', '--format', 'csv'],
      ['sessions', '--charger', serial],
      ['sessions', '--since', '2020-01-01', '--until', '2100-01-01', '--format', 'csv'],
    ]) {
      const r = await both(args);
      expect(r.postgres.stderr).toBe('');
      expect(r.postgres.code).toBe(0);
      expect(r.postgres.stdout).toBe(r.sqlite.stdout);
    }
    // jsonb keeps an object's members in an order of its own: the same `data`, compared as JSON.
    const json = await both(['sessions', '--format', 'json']);
    const rows = JSON.parse(json.postgres.stdout) as unknown[];
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).toEqual(JSON.parse(json.sqlite.stdout));
  });

  it('status: the same report (the stopped daemon, its installations, counts and budget windows)', async () => {
    const r = await both(['status', '--json']);
    expect(r.postgres.stderr).toBe('');
    expect(r.postgres.code).toBe(1); // stopped: degraded, on either store
    expect(r.sqlite.code).toBe(1);
    const strip = (text: string) => {
      const report = JSON.parse(text) as { budget: { used: number }[] };
      for (const b of report.budget) b.used = 0; // counted at the moment of reading
      return report;
    };
    expect(strip(r.postgres.stdout)).toEqual(strip(r.sqlite.stdout));
  });

  it('refresh and command go into the schema; --wait sees the daemon’s answer', async () => {
    const queued = await runCli(['refresh', serial], { env: postgres, cwd: dir });
    expect(queued.stderr + queued.stdout).toMatch(/queued/);
    expect(queued.code).toBe(0);
    expect(queued.stderr).toMatch(/no daemon is running on .*schema .*; the request waits until one starts/);
    const id = Number(/queued refresh request (\d+)/.exec(queued.stdout)?.[1]);
    const row = await pgAdmin().query(
      `SELECT charger, handled_at FROM ${schema}.refresh_requests WHERE id = $1`,
      [id],
    );
    expect(row.rows[0]).toEqual({ charger: serial, handled_at: null });
    const waiting = runCli(['refresh', serial, '--wait', '20'], { env: postgres, cwd: dir });
    await waitFor(async () => {
      const r = await pgAdmin().query(
        `UPDATE ${schema}.refresh_requests SET handled_at = now(), outcome = 'found' WHERE id > $1 RETURNING id`,
        [id],
      );
      return r.rowCount === 1;
    });
    const answered = await waiting;
    expect(answered.stdout).toBe('found\n');
    expect(answered.code).toBe(0);
    const command = await runCli(['command', serial, 'pause'], { env: postgres, cwd: dir });
    expect(command.code).toBe(0);
    const asked = await pgAdmin().query(`SELECT target, action, status FROM ${schema}.commands`);
    expect(asked.rows).toEqual([{ target: serial, action: 'pause', status: 'pending' }]);
    const status = await runCli(['status', '--json'], { env: postgres, cwd: dir });
    const report = JSON.parse(status.stdout) as {
      counts: { pending_commands: number; open_refresh_requests: number };
    };
    expect(report.counts).toMatchObject({ pending_commands: 1, open_refresh_requests: 1 });
  });

  it('a schema migrate has not made: exit 2 and one line, as for a missing SQLite file', async () => {
    const r = await runCli(['status'], { env: cleanEnv(pgEnv(freshSchema())), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zaptec-sync status: no zaptec-sync schema at .* \(run migrate\)\n$/);
  });
});
