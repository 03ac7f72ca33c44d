/** issue 6: the demo shows chargers changing state within 30 s, in a plain pipe; Ctrl-C exits 0. */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cleanEnv, startCli, tempDir, waitFor } from '../helpers.js';

describe('zaptec-sync demo', () => {
  it('shows chargers changing state within 30 s, then stops on SIGINT with exit 0 and a readable database', {
    timeout: 150_000,
  }, async () => {
    const dir = tempDir();
    // A real setup's settings beside it: the demo must not read them (issue 26 §4).
    writeFileSync(join(dir, '.env'), 'ZAPTEC_DB=./real.db\nZAPTEC_PASSWORD_FILE=/nonexistent/password\n');
    const started = Date.now();
    const demo = startCli(['demo', '--rate', '10'], { cwd: dir, env: cleanEnv() });
    const changes = () => {
      const byCharger = new Map<string, Set<string>>();
      for (const m of demo.output().matchAll(/^\d\d:\d\d:\d\d (?!command )(\S+) (.+)$/gm)) {
        byCharger.set(m[1]!, (byCharger.get(m[1]!) ?? new Set()).add(m[2]!));
      }
      return [...byCharger.values()].filter((s) => s.size >= 2).length;
    };
    await waitFor(() => changes() >= 2, { timeoutMs: 30_000, what: 'two chargers changing state' });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(demo.output()).not.toContain(String.fromCharCode(27)); // no cursor tricks in a pipe
    expect(demo.output()).toMatch(/API: \d+ calls in the last minute \(budget 600\/min\)/);
    // The last completed sessions, as they land in charging_sessions (issue 15 §6).
    await waitFor(
      () =>
        /^\d\d:\d\d:\d\d \S+ session completed: \d+\.\d{3} kWh, (unsigned|signed, valid) \((event|poll|history)\)$/m.test(
          demo.output(),
        ),
      {
        timeoutMs: 40_000,
        what: 'a completed session in the view',
      },
    );
    // A command landing (issue 29 §3): the demo's energy manager pauses a charging charger through the daemon.
    await waitFor(
      () => /^\d\d:\d\d:\d\d command #1 pause ZAP\d+ \(asked by demo\): confirmed$/m.test(demo.output()),
      { timeoutMs: 40_000, what: 'a pause confirmed in the view' },
    );
    demo.child.kill('SIGINT');
    expect(await demo.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(join(dir, 'real.db'))).toBe(false);
    const db = new Database(join(dir, 'zaptec-demo.db'), { readonly: true, fileMustExist: true });
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(count('SELECT count(*) AS n FROM charger_state')).toBeGreaterThan(0);
    // The past days' sessions came with their energy per interval, for CONSUMERS.md's per-hour query.
    expect(count('SELECT count(*) AS n FROM charging_session_energy')).toBeGreaterThan(0);
    const valid = count('SELECT count(*) AS n FROM charging_sessions WHERE signature_valid = 1');
    expect(valid).toBeGreaterThan(0);
    db.close();

    // A second demo over the database the first one left: the MID keys are the same for the seed, and no
    // session verified before turns invalid.
    const again = startCli(['demo', '--rate', '10'], { cwd: dir, env: cleanEnv() });
    await waitFor(() => /API: \d+ calls in the last minute/.test(again.output()), {
      timeoutMs: 30_000,
      what: "the second demo's view",
    });
    again.child.kill('SIGINT');
    expect(await again.exited).toEqual({ code: 0, signal: null });
    const after = new Database(join(dir, 'zaptec-demo.db'), { readonly: true, fileMustExist: true });
    const n = (sql: string) => (after.prepare(sql).get() as { n: number }).n;
    expect(n('SELECT count(*) AS n FROM charging_sessions WHERE signature_valid = 0')).toBe(0);
    expect(n('SELECT count(*) AS n FROM charging_sessions WHERE signature_valid = 1')).toBeGreaterThanOrEqual(
      valid,
    );
    after.close();
  });
});
