/**
 * CONTRACT §4: a daemon restarted 20 times stays inside every window. Twenty processes in a row, one
 * database, each wanting the lists, against a simulator enforcing Zaptec's limits — with every window
 * scaled down 120× (30 minutes → 15 s) in both the simulator and the client's profile.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/simulator/fleet.js';
import { zaptecLimits } from '../../src/simulator/limits.js';
import { RestSimulator } from '../../src/simulator/rest.js';
import { maxInWindow, tempDir } from '../helpers.js';

const SCALE = 1 / 120;
const CHILD = fileURLToPath(new URL('../fixtures/list-client.mjs', import.meta.url));

function runChild(args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => resolve(code));
  });
}

describe('twenty starts in a row', () => {
  const sim = new RestSimulator({
    fleet: new Fleet({ installations: 2, chargersPerInstallation: 3, seed: 3 }),
    limits: zaptecLimits(SCALE),
  });
  afterAll(() => sim.stop());

  it('never make the simulator see a window exceeded', async () => {
    const url = await sim.start();
    const db = join(tempDir(), 'z.db');
    for (let i = 0; i < 20; i++) expect(await runChild([url, db, String(SCALE), '8'])).toBe(0);
    const lists = sim.requests.filter((r) => r.path === '/api/installation' || r.path === '/api/chargers');
    expect(lists).toHaveLength(160);
    expect(sim.rejected).toEqual([]);
    const times = lists.map((r) => r.at);
    expect(maxInWindow(times, 60_000 * SCALE)).toBeLessThanOrEqual(30);
    expect(maxInWindow(times, 1_800_000 * SCALE)).toBeLessThanOrEqual(150);
    // 160 wanted, 130 allowed per (scaled) 30 minutes: the client waited instead of being refused.
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(1_800_000 * SCALE);
  });
});
