/** Every example of docs/CONSUMERS.md, run against a database the daemon made from the simulator. */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers.js';
import { liveHarness } from '../sync/live-harness.js';
import { consumerBlocks } from './blocks.js';

const blocks = consumerBlocks;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let dir = '';

describe('docs/CONSUMERS.md', () => {
  beforeAll(async () => {
    // Five weeks of charge history: last month's per-hour energy query has sessions to sum.
    const h = await liveHarness({ installations: 2, chargersPerInstallation: 3, pastDays: 35 });
    h.sim.live({ eventsPerSecond: 40 }, 100);
    const run = h.start();
    await h.connected();
    await waitFor(
      () =>
        h.one<{ n: number }>("SELECT count(*) AS n FROM charger_state WHERE state_id = 710 AND value = '3'")
          .n > 0,
      {
        timeoutMs: 30_000,
        what: 'a charging session',
      },
    );
    await waitFor(() => h.one<{ n: number }>('SELECT count(*) AS n FROM charge_history_passes').n === 2, {
      timeoutMs: 30_000,
      what: "both installations' charge-history backfill",
    });
    run.child.kill('SIGTERM');
    await run.exited;
    // The harness cleans up after each test: keep a copy of the database for all of them.
    dir = mkdtempSync(join(tmpdir(), 'zaptec-consumers-'));
    copyFileSync(h.dbPath, join(dir, 'zaptec.db'));
    copyFileSync(join(dirname(h.dbPath), 'control.db'), join(dir, 'control.db'));
  }, 60_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has examples for the sqlite3 command line, Python and Node', () => {
    expect(blocks('sh').length).toBe(5);
    expect(blocks('python').length).toBe(2);
    expect(blocks('js').length).toBe(2);
  });

  it.runIf(has('sqlite3'))('the sqlite3 command-line examples run', () => {
    const [current, freshness, refresh, , perHour] = blocks('sh').map((b) =>
      b.startsWith('zaptec-sync') ? '' : execFileSync('sh', ['-c', b], { cwd: dir, encoding: 'utf8' }),
    );
    const hours = perHour!.trim().split('\n');
    expect(hours[0]).toBe('hour|device_id|kwh');
    expect(hours.length).toBeGreaterThan(1);
    expect(hours[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:00\|ZAP\d+\|\d+(\.\d+)?$/);
    expect(current).toMatch(/ChargerOperationMode/);
    expect(freshness).toMatch(/last_heard/);
    expect(refresh?.trim()).toMatch(/^\d+$/);
  });

  it('the billing export runs: last month as CSV with its header line', () => {
    // `zaptec-sync` on the PATH, as after `npm install -g`: this checkout's build.
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'zaptec-sync'),
      `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist', 'cli.js')}" "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const out = execFileSync('sh', ['-c', blocks('sh')[3]!], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ZAPTEC_DB: join(dir, 'zaptec.db') },
    });
    expect(out.trim()).toMatch(/^id,charger_id,installation_id,device_id,started_at,ended_at,energy_kwh,/);
  });

  it.runIf(has('python3'))(
    "the energy manager's loop runs: its command is queued and, with no daemon, waits",
    () => {
      const out = execFileSync('python3', ['-c', blocks('python')[1]!], { cwd: dir, encoding: 'utf8' });
      expect(out.trim()).toBe("('waiting', None)");
      const control = new Database(join(dir, 'control.db'), { readonly: true });
      expect(control.prepare('SELECT action, value, requested_by, status FROM commands').get()).toEqual({
        action: 'available_current',
        value: '16',
        requested_by: 'energy-manager',
        status: 'pending',
      });
      control.close();
    },
  );

  it("the Node energy manager's loop runs: its command is queued and, with no daemon, waits", () => {
    mkdirSync(join(ROOT, 'build'), { recursive: true }); // imports resolve from the project's node_modules
    const file = join(ROOT, 'build', 'consumer-commands.mjs');
    writeFileSync(file, blocks('js')[1]!.replaceAll("'control.db'", JSON.stringify(join(dir, 'control.db'))));
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(out.trim()).toBe("[ 'waiting', null ]");
  });

  it.runIf(has('python3'))('the Python example runs', () => {
    const out = execFileSync('python3', ['-c', blocks('python')[0]!], { cwd: dir, encoding: 'utf8' });
    expect(out).toMatch(/operation-mode changes in the last day/);
    expect(out).toMatch(/daemon alive: False/); // it was stopped cleanly
    expect(out.split('\n')[0]).toMatch(/^Z(AP|PR)\d{6} \d+ [\d.]+$/); // a charging charger: serial, W, kWh
  });

  it('the Node example runs', () => {
    mkdirSync(join(ROOT, 'build'), { recursive: true }); // imports resolve from the project's node_modules
    const file = join(ROOT, 'build', 'consumer-example.mjs');
    writeFileSync(
      file,
      blocks('js')[0]!
        .replaceAll("'zaptec.db'", JSON.stringify(join(dir, 'zaptec.db')))
        .replaceAll("'control.db'", JSON.stringify(join(dir, 'control.db'))),
    );
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(out).toMatch(/sessions completed in the last day/);
    expect(out).toMatch(/refresh request \d+/);
  });
});

describe('README', () => {
  it("the real-account section's alias gives a working zaptec-sync on this machine", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const alias = readme.split('\n').find((l) => l.startsWith('alias zaptec-sync='));
    expect(alias).toBeDefined();
    const r = spawnSync('bash', ['-c', `shopt -s expand_aliases\n${alias}\nzaptec-sync --help`], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: zaptec-sync <command>/);
    expect(r.status).toBe(0);
  });
});
