/**
 * sd_notify for Type=notify units. Node has no Unix datagram sockets, so each message is sent by
 * spawning `systemd-notify` (the unit sets NotifyAccess=all so systemd accepts it from that child).
 * Without NOTIFY_SOCKET every call is a no-op.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

export class Notifier {
  readonly #socket: string | undefined;
  readonly #log: Logger;
  #failed = false;
  #lastStatus = '';
  #queue: Promise<void> = Promise.resolve();

  constructor(socket: string | undefined, log: Logger) {
    this.#socket = socket;
    this.#log = log;
  }

  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  ready(status: string): Promise<void> {
    this.#lastStatus = status;
    return this.#send(['READY=1', `STATUS=${status}`]);
  }

  /** A line for `systemctl status`; sent only when it changed. */
  status(text: string): Promise<void> {
    if (text === this.#lastStatus) return this.#queue;
    this.#lastStatus = text;
    return this.#send([`STATUS=${text}`]);
  }

  stopping(): Promise<void> {
    return this.#send(['STOPPING=1', 'STATUS=stopping']);
  }

  watchdog(): Promise<void> {
    return this.#send(['WATCHDOG=1']);
  }

  /** Messages go out one after another, in order. */
  #send(assignments: string[]): Promise<void> {
    if (!this.#socket || this.#failed) return Promise.resolve();
    const socket = this.#socket;
    this.#queue = this.#queue.then(
      () =>
        new Promise<void>((resolve) => {
          const child = spawn('systemd-notify', assignments, {
            env: { NOTIFY_SOCKET: socket, PATH: '/usr/local/bin:/usr/bin:/bin' },
            stdio: 'ignore',
          });
          child.on('error', (err) => {
            if (!this.#failed)
              this.#log.warn(
                { err: err.message },
                'cannot run systemd-notify; readiness and watchdog are off',
              );
            this.#failed = true;
            resolve();
          });
          child.on('exit', () => resolve());
        }),
    );
    return this.#queue;
  }
}
