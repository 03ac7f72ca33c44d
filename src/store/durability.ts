/**
 * Durability by group commit (CONTRACT §7 Durability). The daemon's commits go to the WAL without a sync of
 * their own (`synchronous=NORMAL`); what must survive a power cut — a live message's observation before the
 * message is completed, a budget record before its request is sent — waits for `sync()`: one fsync of the
 * WAL, on libuv's thread pool, covering every commit made before it began. Concurrent waiters share the
 * next one, so a busy minute costs a few hundred fsyncs instead of one per commit, and none of them holds the
 * event loop (a slow SD card's 100 ms fsync included). `synchronous=FULL` would sync inside every commit, on
 * the event loop: BENCHMARKS.md has both.
 *
 * Why an fsync of our own descriptor is enough: SQLite wrote the frames with write(); fsync on any
 * descriptor of the file makes the file's data durable, and SQLite itself (NORMAL) syncs the WAL before
 * every checkpoint and the database after it.
 */
import { closeSync, fstatSync, fsync, fsyncSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Db } from './database.js';

/**
 * A group commit: `run` makes durable every commit made before it began. A caller while one runs waits for the
 * next, shared by every caller that came meanwhile (the run under way may have begun before its commit).
 */
export class GroupCommit {
  readonly #run: () => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(run: () => Promise<void>) {
    this.#run = run;
  }

  /** Whether a run is under way. */
  get busy(): boolean {
    return this.#running !== undefined;
  }

  /** Resolves once a run that began after this call has ended; rejects with that run's error. */
  next(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#run().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#next ??= this.#running
      .catch(() => {})
      .then(() => {
        this.#next = undefined;
        return this.next();
      });
    return this.#next;
  }
}

export class WalSync {
  readonly #walPath: string;
  readonly #dbPath: string;
  #fd: number | undefined;
  #ino: number | undefined;
  readonly #group = new GroupCommit(() => this.#fsync());
  /** fsyncs issued (tests, metrics). */
  syncs = 0;

  constructor(db: Db) {
    this.#dbPath = db.name;
    this.#walPath = `${db.name}-wal`;
  }

  /** Resolves once every commit made before this call is on disk; rejects if the disk says it failed. */
  sync(): Promise<void> {
    return this.#group.next();
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  async #fsync(): Promise<void> {
    const fd = this.#descriptor();
    this.syncs++;
    await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** The WAL's descriptor, opened again when the file was replaced; the database file's when no WAL exists. */
  #descriptor(): number {
    let ino: number;
    let path = this.#walPath;
    try {
      ino = statSync(path).ino;
    } catch {
      path = this.#dbPath; // no WAL (yet): commits went to the database file
      ino = statSync(path).ino;
    }
    if (this.#fd !== undefined && this.#ino === ino) return this.#fd;
    this.close();
    this.#fd = openSync(path, 'r');
    this.#ino = fstatSync(this.#fd).ino;
    syncDirectory(dirname(path)); // a newly created WAL's directory entry must survive too
    return this.#fd;
  }
}

function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the file's own sync still holds its data.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
