/**
 * The daemon's lifecycle (zigbee2mqtt's controller shape): components are started in order after the
 * `daemon` row is written, stopped in reverse, and a heartbeat is rewritten while the process lives.
 */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { DaemonRecord } from '../store/daemon-row.js';
import { describeWriteError } from '../store/database.js';
import type { Clock } from '../time.js';

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
  /** Called after each heartbeat write (the watchdog pings from here). */
  onHeartbeat?: () => void;
}

export class Daemon {
  readonly #deps: DaemonDeps;
  #timer: NodeJS.Timeout | undefined;
  #started: Component[] = [];
  #stopping = false;

  constructor(deps: DaemonDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { record, clock, version, log } = this.#deps;
    record.started(version, process.pid, clock.now());
    this.#timer = setInterval(() => this.#beat(), HEARTBEAT_INTERVAL_MS);
    for (const c of this.#deps.components) {
      if (this.#stopping) return;
      await c.start();
      this.#started.push(c);
    }
    log.info({ components: this.#started.map((c) => c.name) }, 'zaptec-sync started');
  }

  #beat(): void {
    try {
      this.#deps.record.heartbeat(this.#deps.clock.now());
      this.#deps.onHeartbeat?.();
    } catch (err) {
      this.#deps.log.warn({ err: describeWriteError(err) }, 'heartbeat could not be written');
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearInterval(this.#timer);
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
