/**
 * How the systemd unit starts the daemon, read from `systemd/zaptec-sync.service`: the Node flags of its
 * `ExecStart=` and its `Environment=` settings other than ZAPTEC_*. The benchmarks start the daemon the same
 * way, so what they measure is what ships; `test/systemd.test.ts` checks each supported Node accepts the flags.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const UNIT = fileURLToPath(new URL('../../systemd/zaptec-sync.service', import.meta.url));

export interface UnitStart {
  /** Between the node binary and the script, e.g. `--max-semi-space-size=1`. */
  nodeFlags: string[];
  /** `Environment=` settings that are not ZAPTEC_* (those the benchmarks set themselves). */
  env: Record<string, string>;
}

export function unitStart(path = UNIT): UnitStart {
  const text = readFileSync(path, 'utf8');
  const exec = /^ExecStart=(.+)$/m.exec(text)?.[1]?.trim().split(/\s+/);
  const script = exec?.findIndex((a) => a.endsWith('/cli.js')) ?? -1;
  if (!exec || script < 1) throw new Error(`${path}: no ExecStart= running node …/cli.js`);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=(\w+)=(\S*)$/gm))
    if (!m[1]!.startsWith('ZAPTEC_')) env[m[1]!] = m[2]!;
  return { nodeFlags: exec.slice(1, script), env };
}
