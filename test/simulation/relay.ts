/**
 * A TCP relay on loopback between a client in this process and a server, that can stop passing bytes both
 * ways and pass them on later: the connection of a process the simulation froze (SIGSTOP) — the server's
 * words (an error, the end of its session) wait unread, and the client's wait unsent, until the thaw.
 */
import { createServer, type Socket, connect as tcp } from 'node:net';

export class Relay {
  readonly #server;
  readonly #sockets = new Set<Socket>();
  #frozen = false;

  constructor(host: string, port: number) {
    this.#server = createServer((client) => {
      const upstream = tcp({ host, port });
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(from);
        if (this.#frozen) from.pause();
        from.on('data', (chunk) => to.write(chunk));
        from.on('end', () => to.end());
        from.on('error', () => to.destroy());
        from.on('close', () => {
          this.#sockets.delete(from);
          to.destroy();
        });
      }
    });
  }

  /** Listens on a free port of 127.0.0.1; resolves to it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return (this.#server.address() as { port: number }).port;
  }

  /** Nothing more is read from either side; what arrives waits in the sockets. */
  freeze(): void {
    this.#frozen = true;
    for (const s of this.#sockets) s.pause();
  }

  /** What waited is passed on, and everything after it. */
  thaw(): void {
    this.#frozen = false;
    for (const s of this.#sockets) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
