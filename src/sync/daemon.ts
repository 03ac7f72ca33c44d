/**
 * The daemon's lifecycle (zigbee2mqtt's controller shape): components are started in order after the
 * `daemon` row is written, stopped in reverse, and a heartbeat is rewritten while the process lives.
 */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { DaemonRecord } from '../store/daemon-row.js';
import { describeWriteError } from '../store/database.js';
import { type Clock, every, quietAbortController } from '../time.js';
import type { Problems } from './problems.js';

/** A part of the daemon with work of its own: the constructor only stores dependencies. */
export interface Component {
  readonly name: string;
  start(): Promise<void> | void;
  /** Undoes start(); waits for the pass in flight. */
  stop(): Promise<void> | void;
}

/** `heartbeat_at` is rewritten this often; CONTRACT §3 promises at least every 10 s. */
export const HEARTBEAT_INTERVAL_MS = 5_000;

export interface DaemonDeps {
  record: DaemonRecord;
  clock: Clock;
  log: Logger;
  version: string;
  components: Component[];
  problems: Problems;
  /** Long work under way, in words (the heartbeat writes it for `status`). */
  progress?: () => string | undefined;
  /** How often the heartbeat is tried; HEARTBEAT_INTERVAL_MS unless the watchdog wants it sooner. */
  heartbeatMs?: number;
  /**
   * Called after each heartbeat attempt, written or not: the event loop and the coordinator run, so the
   * watchdog is pinged from here; a database that cannot be written is a problem for `status`, not a reason
   * for systemd to kill the daemon (CONTRACT §7 Watchdog).
   */
  onHeartbeat?: () => void;
}

export class Daemon {
  readonly #deps: DaemonDeps;
  readonly #beats = quietAbortController();
  #beating: Promise<void> | undefined;
  #started: Component[] = [];
  #stopping = false;

  constructor(deps: DaemonDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { record, clock, version, log } = this.#deps;
    record.started(version, process.pid, clock.now());
    this.#beating = every(
      clock,
      this.#deps.heartbeatMs ?? HEARTBEAT_INTERVAL_MS,
      () => this.#beat(),
      this.#beats.signal,
    );
    for (const c of this.#deps.components) {
      if (this.#stopping) return;
      await c.start();
      this.#started.push(c);
    }
    log.info({ components: this.#started.map((c) => c.name) }, 'zaptec-sync started');
  }

  #beat(): void {
    const { problems, record, clock } = this.#deps;
    try {
      // Written at all, the database is writable: that problem is not carried into the row it would deny.
      record.heartbeat(
        clock.now(),
        problems.list().filter((p) => p.key !== 'database'),
        this.#deps.progress?.(),
      );
      problems.ok('database', 'the database can be written again');
    } catch (err) {
      problems.fail(
        'database',
        `the daemon cannot write the database: ${describeWriteError(err)}; nothing is lost, writes wait`,
      );
    }
    try {
      this.#deps.onHeartbeat?.();
    } catch (err) {
      this.#deps.log.warn({ err: describeError(err) }, 'heartbeat follow-up failed');
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#beats.abort();
    await this.#beating;
    for (const c of [...this.#started].reverse()) {
      try {
        await c.stop();
      } catch (err) {
        this.#deps.log.warn({ component: c.name, err: describeError(err) }, 'component did not stop cleanly');
      }
    }
    this.#started = [];
    this.#deps.record.stopped(this.#deps.clock.now());
  }
}
