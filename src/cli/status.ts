import { environment, parseConfig } from '../config.js';
import { type HealthReport, healthReport } from '../store/health.js';
import { openReader } from '../store/reader.js';
import { parseCommandArgs } from './args.js';
import { EXIT_FAILED, EXIT_NO_DATABASE } from './exit-codes.js';
import { ago, table } from './format.js';

/** `status [--json]`: 0 healthy, 1 degraded, 2 no database or the daemon never ran. Never creates a database. */
export async function statusCommand(args: string[], envFile: string | undefined): Promise<number> {
  const { values } = parseCommandArgs(args, { json: { type: 'boolean' } }, 0);
  const env = environment(envFile);
  const config = parseConfig(env);
  const reader = await openReader(env, 'status');
  if (!reader) return EXIT_NO_DATABASE;
  let report: HealthReport | undefined;
  const now = Date.now();
  try {
    report = await healthReport(reader, now, config.reconcileMinutes * 2 * 60_000);
  } finally {
    await reader.close();
  }
  if (!report) {
    process.stderr.write(`zaptec-sync status: the daemon has never run against ${reader.where}\n`);
    return EXIT_NO_DATABASE;
  }
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${formatReport(report, now)}\n`);
  return report.healthy ? 0 : EXIT_FAILED;
}

function formatReport(r: HealthReport, now: number): string {
  const lines = [r.healthy ? 'healthy' : `degraded: ${r.problems.join('; ')}`, ''];
  lines.push(
    table([
      ['daemon', `pid ${r.pid ?? '-'}, version ${r.version}, schema ${r.schema_version}`],
      [
        'heartbeat',
        `${ago(r.heartbeat_at, now)}${r.stopped_at ? ` (stopped ${ago(r.stopped_at, now)})` : ''}`,
      ],
      ['inventory', `refreshed ${ago(r.inventory_refreshed_at, now)}, next ${ago(r.next_inventory_at, now)}`],
      [
        'chargers',
        `${r.counts.chargers} active in ${r.counts.installations} installations, ${r.counts.chargers_with_state} with state, ${r.counts.stale_chargers} stale`,
      ],
      ['refresh requests', `${r.counts.open_refresh_requests} open`],
      [
        'commands',
        `${r.counts.pending_commands} pending${r.commands.map((c) => `; #${c.id} ${c.action}${c.value ? ` ${c.value}` : ''} ${c.target}${c.requested_by ? ` by ${c.requested_by}` : ''}${c.detail ? ` (${c.detail})` : ''}`).join('')}`,
      ],
      ...(r.progress ? [['under way', r.progress]] : []),
    ]),
  );
  if (r.instances.length > 0) {
    lines.push('', 'instances');
    lines.push(
      table(
        r.instances.map((i) => [
          `  ${i.host} pid ${i.pid}`,
          i.alive ? i.role : `${i.role} (not alive)`,
          `heartbeat ${ago(i.heartbeat_at, now)}`,
          `started ${ago(i.started_at, now)}`,
        ]),
      ),
    );
  }
  if (r.installations.length > 0) {
    lines.push('', 'installations');
    lines.push(
      table(
        r.installations.map((i) => [
          `  ${i.id}`,
          i.name ?? '',
          `events ${i.events}`,
          `last event ${ago(i.last_event_at, now)}`,
          `last poll ${ago(i.last_poll_at, now)}${i.detail ? ` — ${i.detail}` : ''}`,
        ]),
      ),
    );
  }
  if (r.user_groups.length > 0) {
    lines.push('', 'user groups');
    lines.push(
      table(
        r.user_groups.map((g) => [
          `  ${g.id}`,
          `events ${g.events}${g.detail ? ` — ${g.detail}` : ''}`,
          g.installations.length > 0
            ? `carries ${g.installations.join(', ')}`
            : 'carries no installation yet',
        ]),
      ),
    );
  }
  if (r.budget.length > 0) {
    lines.push('', 'API budget (used / limit per window)');
    lines.push(
      table(
        r.budget.map((b) => [
          `  ${b.group}`,
          b.kind === 'bucket'
            ? `burst (refills in ${Number(b.window_seconds.toFixed(2))} s)`
            : `${b.window_seconds} s`,
          `${b.used} / ${b.limit}`,
          b.blocked_until ? `blocked until ${b.blocked_until}` : '',
        ]),
      ),
    );
  }
  return lines.join('\n');
}
