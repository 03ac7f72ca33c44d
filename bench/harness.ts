/** What the benchmarks share: the simulation in this process, the real `zaptec-sync run` in another. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { FleetOptions, SimObservation } from '../src/simulator/fleet.js';
import { Simulation } from '../src/simulator/simulation.js';
import { connectionString } from '../src/store/postgres/pool.js';
import { benchPostgres } from './postgres.js';
import { type UnitStart, unitStart } from './unit.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Bench {
  sim: Simulation;
  dir: string;
  dbPath: string;
  daemon: ChildProcess;
  /** When the daemon was spawned (epoch ms). */
  startedAt: number;
  /** How the daemon was started: as the systemd unit starts it. */
  unit: UnitStart;
  db(): Database.Database;
  count(sql: string, ...p: unknown[]): number;
  until(what: string, cond: () => boolean, timeoutMs: number): Promise<number>;
  /** Stops the daemon, lets `between` change its database, and starts it again over it. */
  restart(between: (db: Database.Database) => void): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `--postgres` on a benchmark's command line: the daemon keeps the account in a throwaway PostgreSQL on this
 * host (CONTRACT §9). The benchmark reads what the daemon sees, its working copy (a SQLite file in the
 * bench's directory, given as STATE_DIRECTORY), which PostgreSQL receives within 200 ms.
 */
export function postgresArg(): boolean {
  return (
    parseArgs({ options: { postgres: { type: 'boolean', default: false } }, strict: false }).values
      .postgres === true
  );
}

/** BENCH_NODE_FLAGS: Node flags for the daemon beside the unit's (`--cpu-prof --cpu-prof-dir=DIR`: where its time goes). */
function nodeFlags(): string[] {
  return (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

/** The active daemon's working copy in `dir` (PostgreSQL), once it has made one. */
function workingCopy(dir: string): string {
  const name = readdirSync(dir).find((n) => n.startsWith('zaptec-sync-work-'));
  if (!name) throw new Error('no working copy yet');
  return join(dir, name, 'zaptec.db');
}

/** `before` runs once the simulation is up and before the daemon is spawned (a fleet's life, say). */
export async function startBench(
  fleet: FleetOptions,
  env: Record<string, string> = {},
  before?: (sim: Simulation) => void,
): Promise<Bench> {
  const sim = new Simulation({ fleet: { seed: 42, ...fleet } });
  await sim.start();
  before?.(sim);
  const dir = mkdtempSync(join(tmpdir(), 'zaptec-bench-'));
  const pg = postgresArg() ? await benchPostgres('bench') : undefined;
  const dbPath = join(dir, 'zaptec.db');
  const store: Record<string, string> = pg
    ? { ZAPTEC_DB: connectionString(pg.location), ZAPTEC_PG_SCHEMA: pg.location.schema, STATE_DIRECTORY: dir }
    : { ZAPTEC_DB: dbPath };
  // As the systemd unit starts it: its Node flags (the heap's sizing) and its environment (malloc's arenas).
  const unit = unitStart();
  const spawnDaemon = () =>
    spawn(process.execPath, [...unit.nodeFlags, ...nodeFlags(), CLI, 'run'], {
      env: {
        ...process.env,
        ...unit.env,
        ...sim.env(),
        ...store,
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
        ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  const stopDaemon = async () => {
    reader?.close();
    reader = undefined;
    b.daemon.kill('SIGTERM');
    if (b.daemon.exitCode === null) await new Promise((r) => b.daemon.once('exit', r));
  };
  let reader: Database.Database | undefined;
  const b: Bench = {
    sim,
    dir,
    dbPath,
    daemon: spawnDaemon(),
    startedAt: Date.now(),
    unit,
    db() {
      reader ??= new Database(pg ? workingCopy(dir) : dbPath, { readonly: true, fileMustExist: true });
      return reader;
    },
    count(sql, ...p) {
      try {
        return (
          b
            .db()
            .prepare(sql)
            .get(...p) as { n: number }
        ).n;
      } catch {
        return -1;
      }
    },
    async until(what, cond, timeoutMs) {
      const start = Date.now();
      for (;;) {
        let ok = false;
        try {
          ok = cond();
        } catch {}
        if (ok) return Date.now() - start;
        if (Date.now() - start > timeoutMs) throw new Error(`benchmark: timed out waiting for ${what}`);
        await sleep(100);
      }
    },
    async restart(between) {
      await stopDaemon();
      const db = new Database(dbPath);
      try {
        between(db);
      } finally {
        db.close();
      }
      b.daemon = spawnDaemon();
      b.startedAt = Date.now();
    },
    async stop() {
      await stopDaemon();
      await sim.stop();
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return b;
}

/** Every followed installation connected. */
export function allConnected(b: Bench): boolean {
  return (
    b.count("SELECT count(*) AS n FROM sync_status WHERE events = 'connected'") ===
    b.sim.fleet.installations.size
  );
}

/** `--user-group` on a benchmark's command line: one user group carries every installation (issue 16 §5). */
export function userGroupArg(): boolean {
  return (
    parseArgs({ options: { 'user-group': { type: 'boolean', default: false } }, strict: false }).values[
      'user-group'
    ] === true
  );
}

/**
 * With a user group (CONTRACT §5): one observation of each installation through it, then wait until the group
 * carries every installation and their own subscriptions are closed, so what follows runs on one connection.
 */
export async function carriedByGroup(b: Bench): Promise<void> {
  const first = new Map<string, string>();
  for (const c of b.sim.fleet.chargers.values())
    if (c.installationId && !first.has(c.installationId)) first.set(c.installationId, c.id);
  const at = Date.now() - 60_000;
  for (const chargerId of first.values()) b.sim.publish(b.sim.fleet.set(chargerId, 710, '0', at));
  const n = b.sim.fleet.installations.size;
  await b.until(
    'the user group carrying every installation',
    () =>
      b.count(
        "SELECT count(*) AS n FROM sync_status WHERE events = 'connected' AND detail LIKE 'through user group %'",
      ) === n,
    120_000,
  );
  // The carried installations' own clients close within 3 s of the carriage (LiveEvents).
  await sleep(5_000);
}

/**
 * Publishes `total` observations at `perSecond`, spread over the fleet; returns publish times by
 * (charger, state, time). Timestamps start an hour ahead so no state read can bring a newer value.
 */
export async function publishAtRate(
  b: Bench,
  total: number,
  perSecond: number,
  states: number[],
): Promise<Map<string, number>> {
  const chargers = [...b.sim.fleet.chargers.values()];
  const published = new Map<string, number>();
  const t0 = Date.now() + 3_600_000;
  const tickMs = 5;
  const perTick = (perSecond * tickMs) / 1000;
  const start = Date.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / tickMs + 1) * perTick));
    for (; sent < due; sent++) {
      const c = chargers[sent % chargers.length]!;
      const o: SimObservation = b.sim.fleet.set(
        c.id,
        states[Math.floor(sent / chargers.length) % states.length]!,
        String(sent),
        t0 + sent,
      );
      b.sim.publish(o);
      published.set(`${c.id}:${o.stateId}:${o.at}`, Date.now());
    }
    await sleep(tickMs);
  }
  return published;
}

/** Publish→commit latencies (ms), sorted, for the observations published. */
export function latencies(b: Bench, published: Map<string, number>, fromIso: string): number[] {
  const rows = b
    .db()
    .prepare(
      'SELECT charger_id, state_id, observed_at, received_at FROM charger_state_history WHERE observed_at >= ?',
    )
    .all(fromIso) as { charger_id: string; state_id: number; observed_at: string; received_at: string }[];
  const out: number[] = [];
  for (const r of rows) {
    const at = published.get(`${r.charger_id}:${r.state_id}:${Date.parse(r.observed_at)}`);
    if (at !== undefined) out.push(Date.parse(r.received_at) - at);
  }
  return out.sort((x, y) => x - y);
}

export function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for the daemon's /metrics). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
