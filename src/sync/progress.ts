/**
 * Long work shows how far it is (issue 26 §5): the first start's state pass and the charge-history backfill
 * over thousands of chargers may take many minutes, and a person watching the log or `status` should see
 * "n of N, about M minutes left" instead of silence. A task says so every few seconds while it runs, and once
 * when it ends; a task that ends before its first report says nothing (a small fleet's passes stay quiet).
 */
import type { Logger } from '../log.js';
import type { Clock } from '../time.js';

/** How often a running task is reported in the log. */
export const PROGRESS_LOG_MS = 5_000;

interface Task {
  label: string;
  unit: string;
  total: number;
  done: number;
  startedAt: number;
  loggedAt: number;
  reported: boolean;
}

export class Progress {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #tasks = new Map<string, Task>();

  constructor(log: Logger, clock: Clock) {
    this.#log = log;
    this.#clock = clock;
  }

  /** `n` more of `unit` for the task (created when new): a pass may grow while the inventory pages come. */
  add(key: string, label: string, unit: string, n: number): void {
    if (n <= 0) return;
    const now = this.#clock.now();
    const task = this.#tasks.get(key);
    if (task) task.total += n;
    else
      this.#tasks.set(key, {
        label,
        unit,
        total: n,
        done: 0,
        startedAt: now,
        loggedAt: now,
        reported: false,
      });
  }

  /** `n` of the task's units are done; the last one ends the task. */
  done(key: string, n = 1): void {
    const task = this.#tasks.get(key);
    if (!task) return;
    task.done = Math.min(task.total, task.done + n);
    const now = this.#clock.now();
    if (task.done >= task.total) {
      this.#tasks.delete(key);
      if (task.reported)
        this.#log.info(
          { task: key, total: task.total, minutes: Math.round((now - task.startedAt) / 60_000) },
          `${task.label}: all ${task.total} ${task.unit} done in ${duration(now - task.startedAt)}`,
        );
      return;
    }
    if (now - task.loggedAt >= PROGRESS_LOG_MS) {
      task.loggedAt = now;
      task.reported = true;
      this.#log.info({ task: key, done: task.done, total: task.total }, describe(task, now));
    }
  }

  /** Tasks under way, in words for `status` (undefined when none). */
  summary(): string | undefined {
    const now = this.#clock.now();
    const parts = [...this.#tasks.values()].map((t) => describe(t, now));
    return parts.length > 0 ? parts.join('; ') : undefined;
  }
}

/** "start pass: 1200 of 10000 chargers, about 14 minutes left". */
function describe(t: Task, now: number): string {
  const elapsed = now - t.startedAt;
  const left =
    t.done > 0 && elapsed > 0 ? `, about ${duration(((t.total - t.done) * elapsed) / t.done)} left` : '';
  return `${t.label}: ${t.done} of ${t.total} ${t.unit}${left}`;
}

function duration(ms: number): string {
  if (ms < 90_000) return `${Math.max(1, Math.round(ms / 1000))} s`;
  return `${Math.round(ms / 60_000)} minutes`;
}
