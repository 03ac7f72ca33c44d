/**
 * Writes that must never fail the caller (status bookkeeping): one that meets a held lock or a full disk is
 * kept, the newest per key, and written by `retry()`, which the heartbeat calls.
 */
export class DeferredWrites {
  readonly #unwritten = new Map<string, () => unknown>();

  write(key: string, write: () => unknown): void {
    this.#unwritten.delete(key); // a newer value replaces the one waiting
    try {
      write();
    } catch {
      this.#unwritten.set(key, write);
    }
  }

  /**
   * Writes what could not be written before, in order; stops quietly at the first that still cannot (the
   * heartbeat reports an unwritable database, once) and keeps the rest for the next call.
   */
  retry(): void {
    for (const [key, write] of this.#unwritten) {
      try {
        write();
      } catch {
        return;
      }
      this.#unwritten.delete(key);
    }
  }
}
