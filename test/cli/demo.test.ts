/** issue 6: the demo shows chargers changing state within 30 s, in a plain pipe; Ctrl-C exits 0. */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cleanEnv, startCli, tempDir, waitFor } from '../helpers.js';

describe('zaptec-sync demo', () => {
  it('shows chargers changing state within 30 s, then stops on SIGINT with exit 0 and a readable database', {
    timeout: 90_000,
  }, async () => {
    const dir = tempDir();
    const started = Date.now();
    const demo = startCli(['demo', '--rate', '10'], { cwd: dir, env: cleanEnv() });
    const changes = () => {
      const byCharger = new Map<string, Set<string>>();
      for (const m of demo.output().matchAll(/^\d\d:\d\d:\d\d (\S+) (.+)$/gm)) {
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
    demo.child.kill('SIGINT');
    expect(await demo.exited).toEqual({ code: 0, signal: null });
    const db = new Database(join(dir, 'zaptec-demo.db'), { readonly: true, fileMustExist: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
    expect((db.prepare('SELECT count(*) AS n FROM charger_state').get() as { n: number }).n).toBeGreaterThan(
      0,
    );
    db.close();
  });
});
