/** The units verify, and their hardening scores ≤ 2.0 in `systemd-analyze security --offline=true`. */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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
