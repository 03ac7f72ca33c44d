/**
 * Prometheus `/metrics` and `/healthz` on ZAPTEC_METRICS (host:port). Counters are fed by the components;
 * gauges are read at scrape time from the admission log and the database, so they always tell the truth.
 */
import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { ConfigError } from '../config.js';
import type { Admission } from '../http/admission.js';
import type { Logger } from '../log.js';
import { HEARTBEAT_STALE_MS } from '../store/health.js';
import type { Clock } from '../time.js';
import type { Problems } from './problems.js';

export interface MetricsSources {
  /** Each followed installation's live-event state (`sync_status`). */
  eventStates(): readonly { installation_id: string; events: string }[];
  /** When the stalest active charger was last heard from (ISO 8601); null when none ever was. */
  oldestHeard(): string | null;
  /** The heartbeat the daemon last wrote (ISO 8601); null when none was written. */
  heartbeatAt(): string | null;
  admission: Admission;
  clock: Clock;
  /** What the daemon finds wrong now: /healthz answers 503 with them. */
  problems?: Problems;
  events(): { received: number; applied: number; deadLettered: number; reconnects: number };
  stateReads(): number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly apiRequests: Counter<'group' | 'outcome'>;
  /** Incremented for every 429 answer: monotonic for the process's life, as a counter must be. */
  readonly api429: Counter;
  readonly eventLag: Histogram;
  readonly #sources: MetricsSources;
  #server: Server | undefined;

  /** Commands carried out, by action and outcome (CONTRACT §10). */
  readonly commands: Counter<'action' | 'outcome'>;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const r = this.registry;
    const { admission, clock } = sources;
    // The process's own: resident memory, V8 heap, event-loop lag, GC (prom-client's standard set).
    collectDefaultMetrics({ register: r });
    // 1: this instance works for the account (on PostgreSQL a standby serves 0 here instead).
    new Gauge({
      name: 'zaptec_active',
      help: '1 while this instance is the active daemon',
      registers: [r],
    }).set(1);
    this.apiRequests = new Counter({
      name: 'zaptec_api_requests_total',
      help: 'API requests sent, by endpoint group and outcome (ok, http_error, rate_limited, network_error, timeout)',
      labelNames: ['group', 'outcome'],
      registers: [r],
    });
    this.commands = new Counter({
      name: 'zaptec_commands_total',
      help: 'Commands through the daemon, by action and final outcome (CONTRACT §10)',
      labelNames: ['action', 'outcome'],
      registers: [r],
    });
    this.api429 = new Counter({
      name: 'zaptec_api_429_total',
      help: 'API answers 429 (Too Many Requests) since start',
      registers: [r],
    });
    const windowLabel = (w: { kind: string; seconds?: number; ratePerSecond?: number; burst?: number }) =>
      w.kind === 'sliding' ? `${w.seconds}s` : `burst${w.burst}@${w.ratePerSecond}/s`;
    new Gauge({
      name: 'zaptec_budget_used',
      help: 'Requests in the current window, per endpoint group and window',
      labelNames: ['group', 'window'],
      registers: [r],
      collect() {
        this.reset();
        for (const u of admission.usage())
          this.set({ group: u.group, window: windowLabel(u.window) }, u.used);
      },
    });
    new Gauge({
      name: 'zaptec_budget_limit',
      help: 'The most requests the daemon sends per window, per endpoint group',
      labelNames: ['group', 'window'],
      registers: [r],
      collect() {
        this.reset();
        for (const u of admission.usage()) {
          this.set(
            { group: u.group, window: windowLabel(u.window) },
            u.window.kind === 'sliding' ? u.window.limit : u.window.burst,
          );
        }
      },
    });
    new Gauge({
      name: 'zaptec_budget_blocked',
      help: '1 while an endpoint group may not send (after a 429)',
      labelNames: ['group'],
      registers: [r],
      collect() {
        this.reset();
        for (const u of admission.usage()) this.set({ group: u.group }, u.blockedUntil ? 1 : 0);
      },
    });
    const events = sources.events;
    for (const [name, help, pick] of [
      ['zaptec_events_received_total', 'Service Bus messages received', 'received'],
      ['zaptec_events_applied_total', 'Live observations committed to SQLite', 'applied'],
      ['zaptec_events_dead_lettered_total', 'Messages dead-lettered as malformed', 'deadLettered'],
      ['zaptec_events_reconnects_total', 'Live-event connections re-established', 'reconnects'],
    ] as const) {
      new Counter({
        name,
        help,
        registers: [r],
        collect() {
          this.reset();
          this.inc(events()[pick]);
        },
      });
    }
    this.eventLag = new Histogram({
      name: 'zaptec_event_lag_seconds',
      help: "From Zaptec's observation time to the commit in SQLite",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [r],
    });
    new Gauge({
      name: 'zaptec_events_connected',
      help: '1 while the installation’s live events are connected',
      labelNames: ['installation'],
      registers: [r],
      collect() {
        this.reset();
        for (const s of sources.eventStates()) {
          this.set({ installation: s.installation_id }, s.events === 'connected' ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'zaptec_state_age_seconds',
      help: 'Age of the stalest charger state (since it was last received)',
      registers: [r],
      collect() {
        const oldest = sources.oldestHeard();
        this.set(oldest ? (clock.now() - Date.parse(oldest)) / 1000 : 0);
      },
    });
    new Counter({
      name: 'zaptec_state_reads_total',
      help: 'State reads (/api/chargers/{id}/state) completed',
      registers: [r],
      collect() {
        this.reset();
        this.inc(sources.stateReads());
      },
    });
  }

  /**
   * From memory, never waiting for a lock: the daemon's problems (an unwritable database among them, which
   * the heartbeat finds within seconds), and a heartbeat that stopped being written.
   */
  healthy(): { ok: boolean; reason: string } {
    const { clock, problems } = this.#sources;
    const reasons = problems?.list().map((p) => p.sentence) ?? [];
    const hb = this.#sources.heartbeatAt();
    if (!hb || clock.now() - Date.parse(hb) > HEARTBEAT_STALE_MS)
      reasons.push(`heartbeat is stale (${hb ?? 'never'})`);
    return reasons.length === 0 ? { ok: true, reason: 'ok' } : { ok: false, reason: reasons.join('\n') };
  }

  async start(host: string, port: number, log: Logger): Promise<void> {
    this.#server = createServer((req, res) => {
      if (req.url === '/metrics') {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          (err) => {
            res.writeHead(500);
            res.end(String(err));
          },
        );
      } else if (req.url === '/healthz') {
        let h: { ok: boolean; reason: string };
        try {
          h = this.healthy();
        } catch (err) {
          h = { ok: false, reason: `cannot read the daemon's health: ${(err as Error).message}` };
        }
        res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(`${h.reason}\n`);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', (err: NodeJS.ErrnoException) => {
        // A port that is taken or not allowed is the operator's to fix: restarting cannot (exit 78).
        if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL')
          reject(new ConfigError('ZAPTEC_METRICS', `cannot listen on ${host}:${port} (${err.code})`));
        else reject(err);
      });
      this.#server!.listen(port, host, () => resolve());
    });
    log.info({ host, port }, 'metrics on /metrics and /healthz');
  }

  async stop(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
