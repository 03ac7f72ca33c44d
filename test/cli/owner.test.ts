/** CONTRACT §7 "One daemon per database", through the built CLI. */

import { symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanEnv, runCli, startCli, tempDir, waitFor } from '../helpers.js';

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** An API stand-in that counts what reaches it and answers every request 503. */
async function countingApi(): Promise<{ url: string; requests: () => number }> {
  let n = 0;
  const server = createServer((_req, res) => {
    n++;
    res.writeHead(503).end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n };
}

function daemonRow(db: string): { pid: number; heartbeat_at: string } | undefined {
  const r = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return r.prepare('SELECT pid, heartbeat_at FROM daemon').get() as { pid: number; heartbeat_at: string };
  } finally {
    r.close();
  }
}

describe('one daemon per database', () => {
  it('a second run exits 75 naming the owner, without an API call or a write; a SIGKILLed owner blocks nothing', async () => {
    const dir = tempDir();
    const db = join(dir, 'z.db');
    const base = { ZAPTEC_USERNAME: 'u', ZAPTEC_PASSWORD: 'pw', ZAPTEC_DB: db, ZAPTEC_EVENTS: 'off' };
    const firstApi = await countingApi();
    const first = startCli(['run'], { env: cleanEnv({ ...base, ZAPTEC_API_URL: firstApi.url }), cwd: dir });
    await waitFor(() => daemonRow(db)?.pid === first.child.pid, { what: "the first daemon's row" });

    const secondApi = await countingApi();
    const started = Date.now();
    // Another path to the same file: a symbolic link to it.
    const link = join(tempDir(), 'link.db');
    symlinkSync(db, link);
    const second = await runCli(['run'], {
      env: cleanEnv({ ...base, ZAPTEC_DB: link, ZAPTEC_API_URL: secondApi.url }),
      cwd: dir,
    });
    expect(second.code).toBe(75);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(second.stderr.trim().split('\n')).toHaveLength(1);
    expect(second.stderr).toContain(`pid ${first.child.pid}`);
    expect(secondApi.requests()).toBe(0);
    expect(daemonRow(db)?.pid).toBe(first.child.pid);

    // The first one is alive and still its database's heartbeat.
    const status = await runCli(['status', '--json'], { env: cleanEnv({ ZAPTEC_DB: db }), cwd: dir });
    expect(JSON.parse(status.stdout).problems.join(' ')).not.toMatch(/heartbeat|stopped/);

    first.child.kill('SIGKILL');
    await first.exited;
    const third = startCli(['run'], { env: cleanEnv({ ...base, ZAPTEC_API_URL: firstApi.url }), cwd: dir });
    await waitFor(() => daemonRow(db)?.pid === third.child.pid, { what: "the third daemon's row" });
    third.child.kill('SIGTERM');
    expect(await third.exited).toEqual({ code: 0, signal: null });
  });

  it('a clean stop lets the next run start at once, and a run started during the stop waits for it', async () => {
    const dir = tempDir();
    const db = join(dir, 'z.db');
    const api = await countingApi();
    const env = cleanEnv({
      ZAPTEC_USERNAME: 'u',
      ZAPTEC_PASSWORD: 'pw',
      ZAPTEC_DB: db,
      ZAPTEC_EVENTS: 'off',
      ZAPTEC_API_URL: api.url,
    });
    const first = startCli(['run'], { env, cwd: dir });
    await waitFor(() => daemonRow(db)?.pid === first.child.pid, { what: "the first daemon's row" });
    first.child.kill('SIGTERM');
    const next = startCli(['run'], { env, cwd: dir });
    expect(await first.exited).toEqual({ code: 0, signal: null });
    await waitFor(() => daemonRow(db)?.pid === next.child.pid, { what: "the next daemon's row" });
    next.child.kill('SIGTERM');
    expect(await next.exited).toEqual({ code: 0, signal: null });
  });
});
