/**
 * Issue 26 §5: `doctor` as an operator runs it. OPERATIONS.md's pre-flight line, run as written (paths moved
 * into a temporary root) as an unprivileged user; a database left as doctor found it; an unreachable Service
 * Bus named.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CLI, freePort, hasCommand, runCli, tempDir } from '../helpers.js';
import { liveHarness } from '../sync/live-harness.js';

const REPO = dirname(dirname(CLI));
const OPERATIONS = join(REPO, 'docs', 'OPERATIONS.md');

/** The documented pre-flight line: the one in OPERATIONS.md that runs doctor. */
function documentedDoctorLine(): string {
  const line = readFileSync(OPERATIONS, 'utf8')
    .split('\n')
    .find((l) => l.includes('dist/cli.js doctor'));
  if (!line) throw new Error('OPERATIONS.md has no doctor line');
  return line.replace(/\s+#.*$/, '');
}

const unprivileged = process.getuid?.() === 0 && hasCommand('runuser', ['--help']);
if (!unprivileged)
  console.warn('the pre-flight doctor test is skipped: it needs root and runuser to act as nobody');

describe('doctor', () => {
  it.runIf(unprivileged)(
    "OPERATIONS.md's pre-flight line passes as written, run by root as the service user (here: nobody)",
    async () => {
      const h = await liveHarness({ installations: 2, chargersPerInstallation: 1 });
      const root = tempDir();
      chmodSync(root, 0o755);
      const nobody = { uid: 65534, gid: 65534 };
      const etc = join(root, 'etc/zaptec-sync');
      const state = join(root, 'var/lib/zaptec-sync');
      mkdirSync(etc, { recursive: true, mode: 0o755 });
      mkdirSync(dirname(state), { recursive: true, mode: 0o755 });
      mkdirSync(state, { mode: 0o750 });
      chownSync(state, nobody.uid, nobody.gid);
      const settings = ['ZAPTEC_USERNAME', 'ZAPTEC_API_URL', 'ZAPTEC_SERVICEBUS_ENDPOINT', 'ZAPTEC_EVENTS']
        .map((k) => `${k}=${h.env[k]}`)
        .join('\n');
      writeFileSync(join(etc, 'zaptec-sync.env'), `${settings}\n`, { mode: 0o640 });
      chownSync(join(etc, 'zaptec-sync.env'), 0, nobody.gid);
      writeFileSync(join(etc, 'password'), `${h.env.ZAPTEC_PASSWORD}\n`, { mode: 0o600 });
      const line = documentedDoctorLine()
        .replace(/^sudo /, '')
        .replaceAll('/etc/zaptec-sync', etc)
        .replaceAll('/var/lib/zaptec-sync', state)
        .replaceAll('/opt/zaptec-sync', REPO)
        .replaceAll('/usr/bin/node', process.execPath)
        .replaceAll('-u zaptec-sync', '-u nobody');
      // Not spawnSync: the simulator answers from this process's event loop.
      const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn('sh', ['-c', line]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).not.toMatch(/FAIL/);
      expect(r.stdout).toMatch(/^ok +credentials/m);
      expect(r.stdout.match(/^ok +live events .* answers at /gm)).toHaveLength(2);
      expect(r.status).toBe(0);
      expect(r.stdout).not.toContain(String(h.env.ZAPTEC_PASSWORD));
    },
  );

  it.runIf(unprivileged)(
    'run by a user who may not write the database directory: exit 78, one line',
    async () => {
      const root = tempDir();
      chmodSync(root, 0o755); // root's, and not writable by nobody
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          'runuser',
          ['-u', 'nobody', '--', 'env', `ZAPTEC_DB=${join(root, 'zaptec.db')}`, process.execPath, CLI, 'run'],
          {
            env: {
              PATH: process.env.PATH,
              ZAPTEC_USERNAME: 'u',
              ZAPTEC_PASSWORD: 'secret-pw',
              ZAPTEC_API_URL: 'http://127.0.0.1:9',
            },
            cwd: root,
          },
        );
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (status) => resolve({ status, stderr }));
      });
      expect(r.status).toBe(78);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(join(root, 'zaptec.db'));
    },
  );

  it.runIf(unprivileged)(
    'a consumer who may read but not write the control database: status works, asking is refused in one line',
    async () => {
      const root = tempDir();
      chmodSync(root, 0o755);
      const env = { PATH: process.env.PATH, ZAPTEC_DB: join(root, 'zaptec.db') };
      expect((await runCli(['migrate'], { env: { ...process.env, ...env } })).code).toBe(0);
      chmodSync(join(root, 'zaptec.db'), 0o644);
      chmodSync(join(root, 'control.db'), 0o644);
      const asNobody = (...args: string[]) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(
            'runuser',
            ['-u', 'nobody', '--', 'env', `ZAPTEC_DB=${env.ZAPTEC_DB}`, process.execPath, CLI, ...args],
            {
              env: { PATH: process.env.PATH },
              cwd: root,
            },
          );
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d) => (stdout += d));
          child.stderr.on('data', (d) => (stderr += d));
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        });
      const ask = await asNobody('command', 'ZAP000001', 'pause');
      expect(ask.status).toBe(78);
      expect(ask.stderr.trim().split('\n').at(-1)).toMatch(
        /may not write the control database .*control\.db/,
      );
      const refresh = await asNobody('refresh', 'ZAP000001');
      expect(refresh.status).toBe(78);
      const control = new Database(join(root, 'control.db'), { readonly: true });
      expect(control.prepare('SELECT count(*) AS n FROM commands').get()).toEqual({ n: 0 });
      control.close();
    },
  );

  it('leaves a cleanly stopped database in rollback-journal mode, and names a Service Bus it cannot reach', async () => {
    const h = await liveHarness({ installations: 1, chargersPerInstallation: 1 });
    expect((await runCli(['migrate'], { env: h.env })).code).toBe(0);
    const before = new Database(h.dbPath, { readonly: true });
    expect(before.pragma('journal_mode', { simple: true })).toBe('delete');
    before.close();
    const port = await freePort();
    const r = await runCli(['doctor'], {
      env: { ...h.env, ZAPTEC_SERVICEBUS_ENDPOINT: `amqp://127.0.0.1:${port}` },
      cwd: tempDir(),
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ok +database/m);
    expect(r.stdout).toMatch(
      new RegExp(
        `^FAIL +live events [0-9a-f-]+: cannot reach the Service Bus at 127\\.0\\.0\\.1:${port}`,
        'm',
      ),
    );
    const after = new Database(h.dbPath, { readonly: true });
    expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
    after.close();
  });
});
