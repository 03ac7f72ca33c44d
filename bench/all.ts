/** `npm run bench`: every benchmark in turn, each appending its row to BENCHMARKS.md. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

for (const name of ['apply', 'ingest', 'freshness', 'lockhold', 'coldstart', 'footprint']) {
  console.log(`\n== ${name}`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(`./${name}.js`, import.meta.url))], {
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exitCode = 1;
}
