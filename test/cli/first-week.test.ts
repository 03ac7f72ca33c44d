/**
 * Issue 26 §4 and §5: start-up and configuration that explain themselves, through the built CLI, as a person
 * meets them: a settings file with a line that is not a setting, a misspelt name, an unsupported Node.js,
 * faults that restarting cannot fix (exit 78, one line), and one exit-status rule for a missing database.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CLI, cleanEnv, freePort, hasCommand, runCli, startCli, tempDir, waitFor } from '../helpers.js';

const CREDENTIALS = {
  ZAPTEC_USERNAME: 'u',
  ZAPTEC_PASSWORD: 'secret-pw',
  ZAPTEC_API_URL: 'http://127.0.0.1:9',
};

function settings(text: string): { dir: string; file: string } {
  const dir = tempDir();
  const file = join(dir, 'zaptec.env');
  writeFileSync(file, text);
  return { dir, file };
}

describe('the settings file', () => {
  it.each([
    ['a line that is not a setting', 'ZAPTEC_EVENTS=off\nthis is not a setting\n', 2],
    ['an unterminated quote', 'ZAPTEC_EVENTS=off\n\nZAPTEC_INVENTORY_CRON="7 * * * *\nLOG_LEVEL=info\n', 3],
    ['text after a closing quote', "ZAPTEC_EVENTS='off' on\n", 1],
  ])('%s: exit 78 with one line naming the file and the line', async (_what, text, line) => {
    const { dir, file } = settings(text);
    for (const option of [['--settings', file], [`--env-file=${file}`]]) {
      const r = await runCli(['run', ...option], { cwd: dir, env: cleanEnv(CREDENTIALS) });
      expect(r.code).toBe(78);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`${file}: line ${line}:`);
    }
  });

  it('a settings file that does not exist: our own message and exit 78, not Node.js stopping first', async () => {
    const r = await runCli(['run', '--settings', '/nonexistent/zaptec.env'], { env: cleanEnv(CREDENTIALS) });
    expect(r.code).toBe(78);
    expect(r.stderr.trim()).toMatch(/^zaptec-sync: configuration: \/nonexistent\/zaptec\.env: cannot read/);
  });

  it('quotes, escapes, export and comments are read as a shell would; the environment wins', async () => {
    const { dir, file } = settings(
      [
        '# a comment',
        'export ZAPTEC_USERNAME=  person@example.com  # who',
        'ZAPTEC_PASSWORD="pa#ss \\"word\\""',
        "ZAPTEC_INVENTORY_CRON='61 * * * *'",
        '',
      ].join('\n'),
    );
    // The cron is invalid: run stops on it, which shows the file's value was read (and nothing else failed).
    const r = await runCli(['run', '--settings', file], { cwd: dir, env: cleanEnv() });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('ZAPTEC_INVENTORY_CRON');
    const wins = await runCli(['run', '--settings', file], {
      cwd: dir,
      env: cleanEnv({ ZAPTEC_INVENTORY_CRON: '62 * * * *', ZAPTEC_EVENTS: 'maybe' }),
    });
    expect(wins.stderr).toContain('ZAPTEC_EVENTS');
  });

  it('a misspelt ZAPTEC_ name: doctor reports it with the closest real one, run warns at start', {
    timeout: 120_000,
  }, async () => {
    const { dir, file } = settings('ZAPTEC_RECONCILE_MINUTS=5\nZAPTEC_EVENTS=off\n');
    const env = cleanEnv({ ...CREDENTIALS, ZAPTEC_DB: join(dir, 'z.db') });
    const doctor = await runCli(['doctor', '--settings', file], { cwd: dir, env });
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(
      /^FAIL {2}configuration: unknown setting ZAPTEC_RECONCILE_MINUTS is ignored — did you mean ZAPTEC_RECONCILE_MINUTES\?$/m,
    );
    const run = startCli(['run', '--settings', file], { cwd: dir, env });
    await waitFor(() => run.output().includes('unknown setting ZAPTEC_RECONCILE_MINUTS'), {
      what: 'the warning',
    });
    expect(run.output()).toContain('ZAPTEC_RECONCILE_MINUTES');
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });
});

/** A Node.js on this machine that zaptec-sync does not support (the machine's own is 20 here), if any. */
function unsupportedNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const v = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
      if (Number(v.slice(1).split('.')[0]) < 22) return candidate;
    } catch {}
  }
  return undefined;
}
const oldNode = unsupportedNode();
if (!oldNode) console.warn('the unsupported-Node test is skipped: no Node.js older than 22 on this machine');

describe.runIf(oldNode)('an unsupported Node.js', () => {
  it.each([['run'], ['status'], ['migrate'], ['sessions'], ['--help']])(
    '%s: one line naming the supported lines, exit 78',
    async (command) => {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(oldNode!, [CLI, command], {
          env: cleanEnv({ ZAPTEC_DB: join(tempDir(), 'z.db') }),
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stderr }));
      });
      expect(r.code).toBe(78);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/Node\.js v\d+\.\d+\.\d+ is not supported; it runs on Node\.js 22, 24, 26/);
    },
  );
});

describe('faults a person must fix: exit 78, one line, before any API call', () => {
  const env = (db: string, extra: Record<string, string> = {}) =>
    cleanEnv({ ...CREDENTIALS, ZAPTEC_DB: db, ZAPTEC_EVENTS: 'off', ...extra });

  it('a database directory that does not exist', async () => {
    const r = await runCli(['run'], { env: env('/nonexistent/dir/zaptec.db') });
    expect(r.code).toBe(78);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('/nonexistent/dir/zaptec.db');
  });

  it('a file that is not a database, and a database newer than this program', async () => {
    const dir = tempDir();
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not an SQLite file, but long enough to look at its header'.repeat(20));
    const a = await runCli(['run'], { env: env(junk) });
    expect(a.code).toBe(78);
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    const newer = join(dir, 'newer.db');
    const db = new Database(newer);
    db.pragma('user_version = 999');
    db.close();
    const b = await runCli(['run'], { env: env(newer) });
    expect(b.code).toBe(78);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toContain('schema version 999');
  });

  it('the metrics port is taken', async () => {
    const port = await freePort();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    try {
      const r = await runCli(['run'], {
        env: env(join(tempDir(), 'z.db'), { ZAPTEC_METRICS: `127.0.0.1:${port}` }),
      });
      expect(r.code).toBe(78);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`ZAPTEC_METRICS: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`);
    } finally {
      holder.close();
    }
  });
});

const hasScript = hasCommand('script');

describe('logs', () => {
  it.runIf(hasScript)('readable lines on a terminal, JSON in a pipe, secrets kept out of both', async () => {
    const dir = tempDir();
    const env = cleanEnv({ ...CREDENTIALS, ZAPTEC_DB: join(dir, 'z.db'), ZAPTEC_EVENTS: 'off' });
    // `script` gives the command a terminal; `timeout` stops it after a few seconds of logging.
    const tty = await new Promise<string>((resolve) => {
      const child = spawn(
        'script',
        ['-qfec', `timeout -s TERM 4 "${process.execPath}" "${CLI}" run`, '/dev/null'],
        { env, cwd: dir },
      );
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('close', () => resolve(out));
    });
    const lines = tty.split(/\r?\n/).filter((l) => /\S/.test(l));
    expect(lines.some((l) => /INFO.*zaptec-sync started/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
    expect(tty).not.toContain('secret-pw');
    const run = startCli(['run'], { env, cwd: dir });
    await waitFor(() => run.output().includes('zaptec-sync started'), { what: 'the start line' });
    run.child.kill('SIGTERM');
    await run.exited;
    const first = run.output().split('\n')[0]!;
    expect(JSON.parse(first)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
  });
});

describe('demo', () => {
  it('refuses a database a daemon kept for a real account: exit 78, the file untouched', async () => {
    const dir = tempDir();
    const db = join(dir, 'real.db');
    // A run against an API that is not on this machine (TEST-NET-1: nothing answers) marks the database.
    const run = startCli(['run'], {
      env: cleanEnv({
        ...CREDENTIALS,
        ZAPTEC_API_URL: 'http://192.0.2.1:9',
        ZAPTEC_DB: db,
        ZAPTEC_EVENTS: 'off',
      }),
      cwd: dir,
    });
    await waitFor(() => run.output().includes('zaptec-sync started'), { what: 'the daemon started' });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    const before = readFileSync(db);
    const demo = await runCli(['demo'], { env: cleanEnv({ ZAPTEC_DB: db }), cwd: dir });
    expect(demo.code).toBe(78);
    expect(demo.stderr.trim().split('\n')).toHaveLength(1);
    expect(demo.stderr).toContain("holds a real account's data");
    expect(readFileSync(db).equals(before)).toBe(true);
  });
});

describe('one exit-status rule', () => {
  it('without a database, every reading command exits 2 and says so; --help lists the statuses', async () => {
    const env = cleanEnv({ ZAPTEC_DB: join(tempDir(), 'missing.db') });
    for (const args of [['status'], ['sessions'], ['state', 'ZAP000001'], ['refresh', 'ZAP000001']]) {
      const r = await runCli(args, { env });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('no database');
    }
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}75 {2}run: another daemon owns the database$/m);
    expect(help.stdout).toMatch(/^ {2}78 {2}bad configuration/m);
  });

  it("refresh --wait: 'deferred' is an answer (exit 0 at once); with no daemon running it says so", async () => {
    const dir = tempDir();
    const path = join(dir, 'z.db');
    const env = cleanEnv({ ZAPTEC_DB: path });
    await runCli(['migrate'], { env });
    const db = new Database(join(dir, 'control.db'));
    const waiting = runCli(['refresh', '--wait', '20'], { env });
    await waitFor(() => db.prepare('SELECT id FROM refresh_requests').get(), { what: 'the request' });
    db.prepare(
      "UPDATE refresh_requests SET outcome = 'deferred', detail = 'runs at 2026-12-07T10:07:00.000Z' WHERE id = 1",
    ).run();
    const started = Date.now();
    const r = await waiting;
    db.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('deferred: runs at 2026-12-07T10:07:00.000Z');
    expect(r.stderr).toContain('no daemon is running');
  });
});
