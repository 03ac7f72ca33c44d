/** The units verify, and their hardening scores ≤ 2.0 in `systemd-analyze security --offline=true`. */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { unitStart } from '../bench/unit.js';
import { tempDir } from './helpers.js';

const UNITS = fileURLToPath(new URL('../systemd/', import.meta.url));
const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;
if (!analyze) console.warn('systemd-analyze is not installed here: the unit checks are skipped');

function units(): string[] {
  const dir = tempDir();
  copyFileSync(join(UNITS, 'zaptec-sync.service'), join(dir, 'zaptec-sync.service'));
  copyFileSync(join(UNITS, 'zaptec-sync@.service'), join(dir, 'zaptec-sync@ci.service')); // an instance of the template
  return [join(dir, 'zaptec-sync.service'), join(dir, 'zaptec-sync@ci.service')];
}

describe('how the units start the daemon', () => {
  const single = unitStart(join(UNITS, 'zaptec-sync.service'));

  it('the same Node flags and environment in both units', () => {
    expect(unitStart(join(UNITS, 'zaptec-sync@.service'))).toEqual(single);
    expect(single.nodeFlags.length).toBeGreaterThan(0);
  });

  // V8's flags are not a stable interface: one a Node line dropped would stop the service from starting. Short-lived
  // garbage with a steady survivor set grows the young generation to 32 MB and more without the flag.
  it(`this Node (${process.version}) accepts the unit's flags, and they keep the young generation small`, () => {
    const churn = `const keep = new Array(1e5);
      for (let i = 0; i < 3e6; i++) keep[i % 1e5] = { i, s: 'x' + i };
      console.log(require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);`;
    const r = spawnSync(process.execPath, [...single.nodeFlags, '-e', churn], {
      encoding: 'utf8',
      env: { ...process.env, ...single.env },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const semiMiB = Number(/--max-semi-space-size=(\d+)/.exec(single.nodeFlags.join(' '))?.[1]);
    expect(semiMiB).toBeGreaterThan(0);
    expect(Number(r.stdout)).toBeLessThanOrEqual(2 * semiMiB * 2 ** 20);
  });
});

describe.runIf(analyze)('systemd units', () => {
  it('pass systemd-analyze verify', () => {
    for (const unit of units()) {
      const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      expect(r.stderr + r.stdout, unit).toBe('');
      expect(r.status, unit).toBe(0);
    }
  });

  it('score 2.0 or better in systemd-analyze security', () => {
    for (const unit of units()) {
      const r = spawnSync('systemd-analyze', ['security', '--offline=true', unit], { encoding: 'utf8' });
      const score = Number(/Overall exposure level for .*: ([\d.]+)/.exec(r.stdout)?.[1]);
      expect(score, unit).toBeLessThanOrEqual(2.0);
    }
  });
});
