/**
 * Writes that meet another connection's lock: how to tell (SQLite's BUSY and LOCKED), and how to wait for the
 * lock without holding the event loop. Store-neutral in shape, so that the layers above need no driver.
 */

/** The lock is held by another connection: the write may be tried again soon, unlike a full disk. */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** How long a daemon write keeps trying while another connection holds the lock, and its steps. */
const WRITABLE_WAIT_MS = 10 * 60_000;
const WRITABLE_STEP_MS = [20, 50, 100, 250, 500];

export interface WritableOptions {
  signal?: AbortSignal;
  /** How long to keep trying (default 10 minutes). */
  maxWaitMs?: number;
  /** Which errors mean "the lock is held" (default: SQLite's). */
  busy?: (err: unknown) => boolean;
}

/**
 * Runs a synchronous write at once, and only while another connection holds the lock (SQLITE_BUSY after the
 * daemon's short busy timeout) tries again after pauses that free the event loop: the result then comes as a
 * promise. Other errors, the signal's abort and a wait past `maxWaitMs` throw the write's own error.
 */
export function whenWritable<T>(
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
  write: () => T,
  options: WritableOptions = {},
): T | Promise<T> {
  const busy = options.busy ?? isBusy;
  try {
    return write();
  } catch (err) {
    if (!busy(err) || options.signal?.aborted) throw err;
  }
  return retryWhileBusy(sleep, write, options);
}

async function retryWhileBusy<T>(
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
  write: () => T,
  options: WritableOptions,
): Promise<T> {
  const busy = options.busy ?? isBusy;
  const max = options.maxWaitMs ?? WRITABLE_WAIT_MS;
  let waited = 0;
  for (let attempt = 0; ; attempt++) {
    const step = WRITABLE_STEP_MS[Math.min(attempt, WRITABLE_STEP_MS.length - 1)]!;
    waited += step;
    await sleep(step, options.signal);
    try {
      return write();
    } catch (err) {
      if (!busy(err) || options.signal?.aborted || waited >= max) throw err;
    }
  }
}
