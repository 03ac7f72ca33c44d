/**
 * vitest's global setup: one throwaway PostgreSQL cluster for the whole run (scripts/postgres), its URL given
 * to the test files as `pg` (test/pg.ts). Where the machine has no PostgreSQL server, the tests that need one
 * say they were skipped and why; under CI=true that is an error instead (CI installs it: .ci/run).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    pg: { url: string } | { absent: string };
  }
}

const script = join(import.meta.dirname, '..', 'scripts', 'postgres');

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-pg-'));
  let url: string;
  try {
    url = execFileSync(script, ['start', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const reason = `no PostgreSQL server: ${String((err as { stderr?: string }).stderr ?? err).trim()}`;
    if (process.env.CI === 'true') throw new Error(`CI needs PostgreSQL for the tests (${reason})`);
    project.provide('pg', { absent: reason });
    return () => {};
  }
  project.provide('pg', { url });
  return () => {
    try {
      execFileSync(script, ['stop', dir], { stdio: 'ignore' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
