/** What every benchmark row records about where it ran. */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this file belongs to, whether it runs compiled (build/bench) or as source (bench). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above the benchmark scripts');
    dir = up;
  }
  return dir;
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return `${os.cpus().length}× ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

/** Appends a dated row to BENCHMARKS.md under the benchmark's heading. */
export function record(benchmark: string, command: string, result: string): void {
  const file = join(repoRoot(), 'BENCHMARKS.md');
  if (!existsSync(file)) {
    writeFileSync(file, '# Benchmarks\n\nEach row: date, machine, command, result. Newest last.\n');
  }
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  appendFileSync(file, `\n- **${benchmark}** — ${date} UTC — ${machine()} — \`${command}\` — ${result}\n`);
}
