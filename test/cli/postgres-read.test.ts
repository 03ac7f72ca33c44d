/**
 * CONTRACT §9 "status, state, sessions and refresh work against it": what a real daemon wrote into SQLite,
 * copied into a PostgreSQL schema, reads the same through the built CLI — byte for byte where nothing depends
 * on the moment of reading. And consumers ask through PostgreSQL: `refresh` and `command` rows, `--wait`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgObservationStore } from '../../src/store/postgres/observations.js';
import { openPool } from '../../src/store/postgres/pool.js';
import { consumerBlocks } from '../docs/blocks.js';
import { cleanEnv, runCli, waitFor } from '../helpers.js';
import { freshSchema, pgAdmin, pgEnv, pgUrl, urlAs } from '../pg.js';
import { copyToPostgres, daemonFiles } from '../pg-copy.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe.runIf(pgUrl)('the commands that read, against PostgreSQL', () => {
  const schema = freshSchema();
  let sqlite: NodeJS.ProcessEnv;
  let postgres: NodeJS.ProcessEnv;
  let serial: string;
  let dir: string;

  beforeAll(async () => {
    const files = await daemonFiles('zaptec-pg-read-');
    dir = files.dir;
    serial = files.serial;
    sqlite = { ...files.env, ZAPTEC_DB: join(dir, 'zaptec.db') };
    postgres = cleanEnv(pgEnv(schema));
    expect((await runCli(['migrate'], { env: postgres, cwd: dir })).code).toBe(0);
    await copyToPostgres([join(dir, 'zaptec.db'), join(dir, 'control.db')], schema);
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

  it('status shows every instance serving the account with its role; none alive and active is "no active daemon"', async () => {
    const row = `INSERT INTO ${schema}.daemons (instance, host, pid, role, started_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, now() - interval '1 hour', now() - $5 * interval '1 second')`;
    await pgAdmin().query(row, ['a:100:1', 'host-a', 100, 'active', 2]);
    await pgAdmin().query(row, ['b:200:1', 'host-b', 200, 'standby', 3]);
    try {
      const json = await runCli(['status', '--json'], { env: postgres, cwd: dir });
      const report = JSON.parse(json.stdout) as {
        problems: string[];
        instances: { host: string; role: string; alive: boolean }[];
      };
      expect(report.instances.map((i) => [i.host, i.role, i.alive])).toEqual([
        ['host-a', 'active', true],
        ['host-b', 'standby', true],
      ]);
      expect(report.problems.join('\n')).not.toMatch(/no active daemon/);
      const text = await runCli(['status'], { env: postgres, cwd: dir });
      expect(text.stdout).toMatch(/^instances\n {2}host-a pid 100 +active +heartbeat \d+ s ago/m);
      // The active one's heartbeat stops: the standby is alone, and that is a problem.
      await pgAdmin().query(
        `UPDATE ${schema}.daemons SET heartbeat_at = now() - interval '5 minutes' WHERE host = 'host-a'`,
      );
      const alone = JSON.parse((await runCli(['status', '--json'], { env: postgres, cwd: dir })).stdout) as {
        problems: string[];
      };
      expect(alone.problems).toContain('no active daemon: 1 standby instance waiting for the lease');
    } finally {
      await pgAdmin().query(`DELETE FROM ${schema}.daemons`);
    }
  });

  describe("docs/CONSUMERS.md's PostgreSQL examples, as a consumer of the control role", () => {
    let url = '';
    /** An example with this file's schema in place of the documented `zaptec`. */
    const example = (lang: string) =>
      consumerBlocks(lang)[0]!
        .replaceAll('TO zaptec', `TO ${schema}`)
        .replaceAll('zaptec_state', `${schema}_state`);
    beforeAll(async () => {
      const password = randomBytes(9).toString('hex');
      await pgAdmin().query(
        `CREATE ROLE ${schema}_consumer LOGIN PASSWORD '${password}' IN ROLE ${schema}_control`,
      );
      url = urlAs(`${schema}_consumer`, password);
    });

    it('one of each: psql, Node with LISTEN, Python', () => {
      expect(
        [consumerBlocks('bash'), consumerBlocks('javascript'), consumerBlocks('py')].map((b) => b.length),
      ).toEqual([1, 1, 1]);
    });

    it.runIf(has('psql'))('psql: every charger’s state and when it was last heard from', () => {
      const out = execFileSync('sh', ['-c', example('bash')], {
        env: { ...process.env, ZAPTEC_PG_URL: url },
        encoding: 'utf8',
      });
      expect(out).toContain(serial);
      expect(out).toMatch(/last_heard/);
      expect(out).toMatch(/\(6 rows\)/); // six chargers, one line each
    });

    it('Node: a LISTENing consumer is told of a charger the daemon changed, and reads it', async () => {
      mkdirSync(join(ROOT, 'build'), { recursive: true }); // `pg` resolves from the project's node_modules
      const file = join(ROOT, 'build', 'consumer-listen.mjs');
      writeFileSync(file, example('javascript'));
      const child = spawn(process.execPath, [file], { env: { ...process.env, ZAPTEC_PG_URL: url } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await waitFor(() => out.includes('listening'), { what: 'the example listening' });
      // The daemon's own path: a batch applied through the store, its NOTIFY after the commit.
      const pool = openPool({ url: pgUrl!, password: undefined, schema });
      try {
        const charger = (
          await pgAdmin().query(`SELECT id FROM ${schema}.chargers WHERE device_id = $1`, [serial])
        ).rows[0].id as string;
        const store = new PgObservationStore(pool, schema, { historyDays: 7, now: () => Date.now() });
        await store.apply([
          { chargerId: charger, stateId: 513, value: '7360', observedAt: Date.now(), source: 'event' },
        ]);
      } finally {
        await pool.end();
      }
      expect(await exited).toBe(0);
      expect(out).toMatch(new RegExp(`^${serial} 513 7360 `, 'm'));
    });

    const python = ['python3', '/usr/bin/python3'].find(
      (p) => spawnSync(p, ['-c', 'import psycopg']).status === 0,
    );
    if (!python)
      console.warn('the psycopg example is skipped: no python3 here has psycopg (Debian: python3-psycopg)');
    it.runIf(python)('Python (psycopg): the last sessions, and a lookup asked for', () => {
      const out = execFileSync(python!, ['-c', example('py')], {
        env: { ...process.env, ZAPTEC_PG_URL: url },
        encoding: 'utf8',
      });
      expect(out).toMatch(/^Z(AP|PR)\d{6} \d{4}-\d\d-\d\dT[\d:.+-]+ [\d.]+$/m);
      expect(out).toMatch(/refresh request \d+/);
    });
  });

  it('a schema migrate has not made: exit 2 and one line, as for a missing SQLite file', async () => {
    const r = await runCli(['status'], { env: cleanEnv(pgEnv(freshSchema())), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^zaptec-sync status: no zaptec-sync schema at .* \(run migrate\)\n$/);
  });
});
