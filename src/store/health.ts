/**
 * Sync health as `status` reports it, read from the database alone (CONTRACT §7): a stale heartbeat, an
 * installation without live events, a blocked budget group, or a problem the daemon recorded (refused
 * credentials, a failing background pass) makes it degraded. A daemon that runs but cannot write the
 * database cannot record that: its heartbeat goes stale while its process lives, and that is said instead.
 */

import { readFileSync } from 'node:fs';
import { isoMs } from '../time.js';
import { WINDOW_USED_SQL, windowStart } from './budget-ledger.js';
import type { DaemonRow } from './daemon-row.js';
import { LAST_HEARD_SQL } from './inventory.js';
import type { Reader, Sql } from './reader.js';
import type { SyncStatusRow } from './sync-status.js';

/** A heartbeat older than this means the daemon is not alive (it is rewritten at least every 10 s). */
export const HEARTBEAT_STALE_MS = 30_000;

export interface BudgetLine {
  group: string;
  window_seconds: number;
  kind: 'sliding' | 'bucket';
  used: number;
  limit: number;
  blocked_until: string | null;
}

export interface DaemonInstance {
  instance: string;
  host: string;
  pid: number;
  role: 'active' | 'standby' | 'stopped';
  started_at: string;
  heartbeat_at: string;
  alive: boolean;
}

export interface HealthReport {
  healthy: boolean;
  /** One plain-word sentence per reason for being degraded; empty when healthy. */
  problems: string[];
  /** The same sentences (the name before schema 3). */
  reasons: string[];
  version: string;
  pid: number | null;
  started_at: string | null;
  stopped_at: string | null;
  heartbeat_at: string | null;
  inventory_refreshed_at: string | null;
  next_inventory_at: string | null;
  schema_version: number;
  /** Long work under way ("state reads of stale chargers: 1200 of 10000 chargers, about 3 minutes left"). */
  progress: string | null;
  installations: (SyncStatusRow & { id: string; name: string | null })[];
  /**
   * PostgreSQL (CONTRACT §9): every instance serving the account, its role and heartbeat; `alive` when its
   * heartbeat is fresh. Empty with SQLite (one daemon per file, the `daemon` row above).
   */
  instances: DaemonInstance[];
  /** ZAPTEC_USER_GROUPS: each group's subscription and the installations it carries (CONTRACT §5). */
  user_groups: { id: string; events: string; detail: string | null; installations: string[] }[];
  budget: BudgetLine[];
  counts: {
    installations: number;
    chargers: number;
    chargers_with_state: number;
    stale_chargers: number;
    open_refresh_requests: number;
    /** Commands not yet sent or answered (CONTRACT §10). */
    pending_commands: number;
  };
  /** The commands waiting, oldest first (at most 20). */
  commands: {
    id: number;
    target: string;
    action: string;
    value: string | null;
    requested_by: string | null;
    detail: string | null;
  }[];
}

/**
 * Undefined when the daemon never ran against this database. Both stores: the same SQL (reader.ts), and for
 * PostgreSQL the requests and commands in the same schema.
 */
export async function healthReport(
  db: Reader,
  now: number,
  staleStateMs: number,
): Promise<HealthReport | undefined> {
  const daemon = (await db.has('daemon'))
    ? await db.get<DaemonRow>('SELECT * FROM daemon WHERE id = 1')
    : undefined;
  if (!daemon) return undefined;
  const reasons: string[] = [];
  const heartbeat = daemon.heartbeat_at ? Date.parse(daemon.heartbeat_at) : Number.NaN;
  if (daemon.stopped_at) reasons.push(`the daemon stopped at ${daemon.stopped_at}`);
  else if (!(now - heartbeat <= HEARTBEAT_STALE_MS))
    reasons.push(staleHeartbeat(daemon, now - heartbeat, db.kind === 'sqlite'));
  if (!daemon.stopped_at && (await db.has('daemon_problems'))) {
    for (const p of await db.all<{ sentence: string }>(
      'SELECT sentence FROM daemon_problems ORDER BY since, key',
    ))
      reasons.push(p.sentence);
  }
  const instances = await readInstances(db, now);
  if (instances.length > 0 && !instances.some((i) => i.alive && i.role === 'active')) {
    const standing = instances.filter((i) => i.alive && i.role === 'standby').length;
    reasons.push(
      `no active daemon${standing > 0 ? `: ${standing} standby instance${standing === 1 ? '' : 's'} waiting for the lease` : ''}`,
    );
  }
  const installations = await db.all<SyncStatusRow & { id: string; name: string | null }>(
    `SELECT s.installation_id AS id, s.installation_id, i.name, s.events, s.last_event_at, s.last_poll_at, s.detail
     FROM sync_status s LEFT JOIN installations i ON i.id = s.installation_id ORDER BY s.installation_id`,
  );
  for (const i of installations) {
    if (i.events !== 'connected' && i.events !== 'off')
      reasons.push(`installation ${i.id}: live events ${i.events}`);
  }
  const userGroups = await readUserGroups(db);
  for (const g of userGroups) {
    if (g.events === 'failed') reasons.push(`user group ${g.id}: ${g.detail ?? 'live events failed'}`);
  }
  const budget = await budgetLines(db, now);
  for (const b of budget) {
    if (b.blocked_until) reasons.push(`API group ${b.group} is blocked until ${b.blocked_until}`);
  }
  const counts = (await db.get<HealthReport['counts']>(
    `SELECT (SELECT count(*) FROM installations WHERE active) AS installations,
            (SELECT count(*) FROM chargers WHERE active) AS chargers,
            (SELECT count(DISTINCT charger_id) FROM charger_state) AS chargers_with_state,
            (SELECT count(*) FROM chargers c WHERE c.active AND NOT coalesce(${LAST_HEARD_SQL} >= ?, false))
              AS stale_chargers`,
    isoMs(now - staleStateMs),
  ))!;
  const asked = await controlCounts(db.control);
  counts.open_refresh_requests = asked.refresh;
  counts.pending_commands = asked.commands;
  const problems = [...new Set(reasons)];
  return {
    healthy: problems.length === 0,
    problems,
    reasons: problems,
    version: daemon.version,
    pid: daemon.pid,
    started_at: daemon.started_at,
    stopped_at: daemon.stopped_at,
    heartbeat_at: daemon.heartbeat_at,
    inventory_refreshed_at: daemon.inventory_refreshed_at,
    next_inventory_at: daemon.next_inventory_at,
    schema_version: daemon.schema_version,
    progress: (daemon.stopped_at ? null : daemon.progress) ?? null,
    instances,
    installations,
    user_groups: userGroups,
    budget,
    counts,
    commands: asked.pending,
  };
}

type Asked = { refresh: number; commands: number; pending: HealthReport['commands'] };

/** What consumers asked for and the daemon has not answered (none without a control database). */
async function controlCounts(control: Sql | undefined): Promise<Asked> {
  const none = { refresh: 0, commands: 0, pending: [] };
  if (!control) return none;
  try {
    return await readControl(control);
  } catch {
    return none; // a control file this user may not read: nothing to tell from it
  }
}

async function readControl(control: Sql): Promise<Asked> {
  const refresh = (await control.get<{ n: number }>(
    'SELECT count(*) AS n FROM refresh_requests WHERE handled_at IS NULL',
  ))!.n;
  const pending = await control.all<HealthReport['commands'][number]>(
    "SELECT id, target, action, value, requested_by, detail FROM commands WHERE status = 'pending' ORDER BY id LIMIT 20",
  );
  const commands = (await control.get<{ n: number }>(
    "SELECT count(*) AS n FROM commands WHERE status = 'pending'",
  ))!.n;
  return { refresh, commands, pending };
}

/** The instances serving the account (PostgreSQL's `daemons`; none in SQLite), the active one first. */
async function readInstances(db: Sql, now: number): Promise<DaemonInstance[]> {
  if (!(await db.has('daemons'))) return [];
  const rows = await db.all<Omit<DaemonInstance, 'alive'>>(
    `SELECT instance, host, pid, role, started_at, heartbeat_at FROM daemons
     ORDER BY CASE role WHEN 'active' THEN 0 WHEN 'standby' THEN 1 ELSE 2 END, instance`,
  );
  return rows.map((r) => ({
    ...r,
    alive: r.role !== 'stopped' && now - Date.parse(r.heartbeat_at) <= HEARTBEAT_STALE_MS,
  }));
}

/** The user groups the daemon last followed (none before schema 5). */
async function readUserGroups(db: Sql): Promise<HealthReport['user_groups']> {
  if (!(await db.has('user_groups'))) return [];
  const carried = await db.all<{ installation_id: string; group_id: string }>(
    'SELECT installation_id, group_id FROM user_group_installations ORDER BY installation_id',
  );
  return (
    await db.all<{ id: string; events: string; detail: string | null }>(
      'SELECT id, events, detail FROM user_groups ORDER BY id',
    )
  ).map((g) => ({
    ...g,
    installations: carried.filter((c) => c.group_id === g.id).map((c) => c.installation_id),
  }));
}

/** A stale heartbeat: the daemon is gone, or (its process still running) it cannot write the database. */
function staleHeartbeat(
  daemon: { pid: number | null; heartbeat_at: string | null },
  ageMs: number,
  sameHost: boolean,
): string {
  if (!sameHost)
    return `heartbeat is stale (${daemon.heartbeat_at ?? 'never'}): no daemon runs, or it cannot reach the database`;
  if (daemon.pid !== null && daemonRuns(daemon.pid)) {
    return `the daemon (pid ${daemon.pid}) runs but cannot write the database: no heartbeat for ${Math.round(ageMs / 1000)} s (another connection holds the write lock, or the disk is full)`;
  }
  return `heartbeat is stale (${daemon.heartbeat_at ?? 'never'}): the daemon is not running`;
}

/** Whether this pid is a zaptec-sync process on this machine (a reused pid is someone else). */
function daemonRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EPERM') return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /zaptec|cli\.js/.test(cmdline);
  } catch {
    return true; // no /proc: the pid alone
  }
}

async function budgetLines(db: Sql, now: number): Promise<BudgetLine[]> {
  if (!(await db.has('api_windows'))) return [];
  const windows = await db.all<{
    grp: string;
    window_seconds: number;
    kind: 'sliding' | 'bucket';
    limit: number;
  }>('SELECT grp, window_seconds, kind, "limit" FROM api_windows ORDER BY grp, window_seconds');
  const lines: BudgetLine[] = [];
  for (const w of windows) {
    const until = (
      await db.get<{ blocked_until_ms: number }>(
        'SELECT blocked_until_ms FROM api_blocks WHERE grp = ? AND blocked_until_ms > ?',
        w.grp,
        now,
      )
    )?.blocked_until_ms;
    const used = (await db.get<{ n: number }>(WINDOW_USED_SQL, w.grp, windowStart(now, w.window_seconds)))!.n;
    lines.push({
      group: w.grp,
      window_seconds: w.window_seconds,
      kind: w.kind,
      used,
      limit: w.limit,
      blocked_until: until ? isoMs(until) : null,
    });
  }
  return lines;
}
