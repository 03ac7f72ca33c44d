/**
 * Commands through the daemon (CONTRACT §10): consumers write `commands` rows into the control database, the
 * daemon carries them out under Zaptec's rules, within the account's one budget.
 * - Off unless ZAPTEC_COMMANDS=on: every row is answered `refused`.
 * - A newer request for the same target and action replaces an older one not yet sent (`superseded`).
 * - A command the stored state shows to be a no-op is not sent (`unnecessary`); values outside the
 *   installation's limits, unknown actions and bad values are `refused`; unknown targets `not_found`.
 * - An installation's current changes at most once per 15 minutes (counted from the database, across
 *   restarts): requests in between wait, `detail` saying until when, and the newest wins.
 * - Sent first in the budget (the admission's priority lane). A rejection (HTTP 500 with Code 528, or 527) is
 *   never retried; network errors that prove nothing was sent, and other 5xx, are retried with backoff for at
 *   most 2 minutes; a restart whose answer was lost is not sent again (a second restart is not harmless).
 * - Confirmed when the expected change is observed (events, or one follow-up state read); `unconfirmed` when
 *   none came within 2 minutes. One log line per command: who asked, what, the outcome.
 */
import { neverSent } from '../http/client.js';
import { HttpStatusError, RateLimitedError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import {
  COMMAND_ACTIONS,
  type CommandOutcome,
  type CommandRow,
  type CommandStore,
} from '../store/commands.js';
import type { InventoryStore } from '../store/inventory.js';
import type { ObservationStore } from '../store/observations.js';
import { type Clock, isoMs, quietAbortController } from '../time.js';
import type { WriteAnswer, ZaptecApi } from '../zaptec/api.js';
import type { Problems } from './problems.js';

/** Zaptec asks that an installation's available current change no more often than this. */
export const CURRENT_SPACING_MS = 15 * 60_000;
/** Network errors and 5xx are retried for at most this long after the first attempt. */
export const RETRY_FOR_MS = 2 * 60_000;
/** Sent and accepted, with no expected change observed this long after: `unconfirmed`. */
export const CONFIRM_WITHIN_MS = 2 * 60_000;
/** The one follow-up state read comes this long after the send when nothing was observed (values settle). */
const FOLLOW_UP_AFTER_MS = 20_000;
/**
 * How often the control database's change counter is looked at (a query of nothing when nobody wrote): a new
 * row is answered within this, well inside the 5 s CONTRACT §10 promises.
 */
const POLL_MS = 1_000;
/** The first retry's pause; each further one doubles. */
const RETRY_BASE_MS = 2_000;

const COMMAND_IDS: Record<string, number> = { pause: 506, resume: 507, restart: 102, deauthorize: 10001 };
/** Zaptec's answer codes that reject a command for good (ErrorCodes in /api/constants). */
const REJECTIONS: Record<number, string> = {
  528: "528 DeviceCommandRejected: the charger's state does not allow it",
  527: '527 NotSupported: the installation is managed by APM (Zaptec Sense)',
};

export interface CommandRunnerDeps {
  store: CommandStore;
  api: Pick<ZaptecApi, 'sendCommand' | 'updateInstallation' | 'installation'>;
  inventory: InventoryStore;
  /** The stored state that says whether a command is a no-op, and confirms it. */
  observations: Pick<ObservationStore, 'current'>;
  /** One state read of a charger soon, within its follow-up bucket (the confirmation's read). */
  readSoon: (chargerId: string) => void;
  enabled: boolean;
  clock: Clock;
  log: Logger;
  problems: Problems;
  /** Told of every command's final outcome (metrics). */
  onOutcome?: (action: string, outcome: CommandOutcome) => void;
}

/**
 * What a newer request replaces an older one by: the action and the target as the consumer wrote it (a serial or
 * an id, in any case: consumer input, normalised here where it enters).
 */
function requestKey(row: CommandRow): string {
  return `${row.action}:${row.target.trim().toLowerCase()}`;
}

/** The fields of an installation's model that hold its available current: one value, or one per phase. */
function currentFields(values: number): string[] {
  return values === 1 ? ['AvailableCurrent'] : [1, 2, 3].map((p) => `AvailableCurrentPhase${p}`);
}

/** A command being carried out: its target resolved, its retries, its confirmation. */
interface InFlight {
  row: CommandRow;
  chargerId?: string;
  installationId?: string;
  firstAttemptAt: number;
  nextAttemptAt: number;
  attempts: number;
  /** A send whose answer was lost (it may have arrived): a 528 after it means the command took effect. */
  uncertain: boolean;
  sentAt?: number;
  followedUp?: boolean;
  value?: number[];
}

export class CommandRunner {
  readonly #d: CommandRunnerDeps;
  readonly #abort = quietAbortController();
  readonly #work = new Map<number, InFlight>();
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #dataVersion = -1;

  constructor(deps: CommandRunnerDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await this.#loop;
  }

  /** Observations were stored: a sent command may be confirmed now. */
  observed(): void {
    if ([...this.#work.values()].some((w) => w.sentAt !== undefined)) this.#wake?.();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#d.problems.guard(
        'commands',
        () => this.#pass(),
        (err) => `carrying out commands failed (${describeError(err)}); tried again in a moment`,
        'carrying out commands works again',
      );
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        void this.#d.clock.sleep(POLL_MS, signal).then(resolve);
      });
      this.#wake = undefined;
    }
  }

  /** One look at the control database and at every command under way. */
  async #pass(): Promise<void> {
    // Another connection committed (a consumer asked): the rows again. The daemon's own writes do not move it.
    const version = this.#d.store.dataVersion();
    if (version !== this.#dataVersion) {
      this.#dataVersion = version;
      this.#admit(this.#d.store.open());
    }
    for (const w of [...this.#work.values()]) {
      if (this.#abort.signal.aborted) return;
      if (w.sentAt === undefined) await this.#send(w);
      else await this.#confirm(w);
    }
  }

  /** New rows: answered at once where the rules say so, the rest taken on. */
  #admit(rows: CommandRow[]): void {
    const now = this.#d.clock.now();
    const newest = new Map<string, number>();
    for (const r of rows) if (r.status === 'pending') newest.set(requestKey(r), r.id);
    for (const row of rows) {
      const known = this.#work.get(row.id);
      if (known) {
        known.row = row;
        const newer = newest.get(requestKey(row));
        if (row.status === 'pending' && newer !== row.id)
          this.#finish(known, 'superseded', `replaced by command ${newer}`);
        continue;
      }
      if (row.status === 'sent') {
        // Sent by an earlier run: its confirmation window is counted from then.
        const sentAt = Date.parse(row.sent_at ?? '') || now;
        const w: InFlight = {
          row,
          firstAttemptAt: sentAt,
          nextAttemptAt: sentAt,
          attempts: 1,
          uncertain: false,
          sentAt,
        };
        if (this.#resolve(w)) this.#work.set(row.id, w);
        continue;
      }
      const w: InFlight = { row, firstAttemptAt: now, nextAttemptAt: now, attempts: 0, uncertain: false };
      if (!this.#d.enabled) {
        this.#finish(w, 'refused', 'commands are off (ZAPTEC_COMMANDS=off)');
        continue;
      }
      const newer = newest.get(requestKey(row));
      if (newer !== row.id) {
        this.#finish(w, 'superseded', `replaced by command ${newer}`);
        continue;
      }
      if (!(COMMAND_ACTIONS as readonly string[]).includes(row.action)) {
        this.#finish(w, 'refused', `unknown action '${row.action}' (${COMMAND_ACTIONS.join(', ')})`);
        continue;
      }
      if (!this.#resolve(w)) continue;
      const unnecessary = this.#noOp(w);
      if (unnecessary) {
        this.#finish(w, 'unnecessary', unnecessary);
        continue;
      }
      this.#work.set(row.id, w);
    }
  }

  /** The target and value of a command; false (and the row answered) when it cannot be carried out. */
  #resolve(w: InFlight): boolean {
    const { row } = w;
    if (row.action !== 'available_current') {
      const charger = this.#d.inventory.findCharger(row.target);
      if (!charger?.active) {
        this.#finish(w, 'not_found', `no charger ${row.target} in the inventory`);
        return false;
      }
      w.chargerId = charger.id;
      return true;
    }
    const id = row.target.toLowerCase();
    const data = this.#d.inventory.installationData(id) as Record<string, unknown> | undefined;
    if (!data) {
      this.#finish(w, 'not_found', `no installation ${row.target} in the inventory`);
      return false;
    }
    w.installationId = id;
    const values = (row.value ?? '').split(',').map((v) => v.trim());
    const amps = values.map(Number);
    if ((values.length !== 1 && values.length !== 3) || values.some((v) => !/^\d+(\.\d+)?$/.test(v))) {
      this.#finish(
        w,
        'refused',
        `value must be amperes: one number, or three comma-separated (got '${row.value ?? ''}')`,
      );
      return false;
    }
    const max = typeof data.MaxCurrent === 'number' ? data.MaxCurrent : undefined;
    if (max !== undefined && amps.some((a) => a > max)) {
      this.#finish(w, 'refused', `${row.value} A is above the installation's MaxCurrent of ${max} A`);
      return false;
    }
    w.value = amps;
    return true;
  }

  /** Why the command would change nothing by the stored state, or undefined. */
  #noOp(w: InFlight): string | undefined {
    if (w.installationId) {
      const data = this.#d.inventory.installationData(w.installationId) as Record<string, unknown>;
      const now = currentFields(w.value!.length).map((f) => data[f]);
      return now.every((v, i) => typeof v === 'number' && v === w.value![i])
        ? `the installation's available current is ${w.row.value} A already`
        : undefined;
    }
    const mode = this.#d.observations.current(w.chargerId!, 710)?.value;
    const stopped = this.#d.observations.current(w.chargerId!, 718)?.value === '1';
    if (mode === undefined || mode === null) return undefined; // nothing stored: Zaptec will say
    switch (w.row.action) {
      case 'pause':
        return (mode === '2' || mode === '3') && !stopped
          ? undefined
          : `the charger is not charging (710 is ${mode})`;
      case 'resume':
        if (mode === '1') return 'no car is connected (710 is 1)';
        return stopped ? undefined : 'the charger is not paused (718 FinalStopActive is not 1)';
      case 'deauthorize':
        return mode === '1' ? 'no car is connected (710 is 1)' : undefined;
      default:
        return undefined;
    }
  }

  /** One attempt to send, when its time has come (the 15-minute rule, a retry's pause). */
  async #send(w: InFlight): Promise<void> {
    const { clock, store } = this.#d;
    const now = clock.now();
    if (now < w.nextAttemptAt) return;
    if (w.installationId) {
      const last = store.lastCurrentUpdate(w.installationId);
      if (last !== undefined && now < last + CURRENT_SPACING_MS) {
        store.waiting(
          w.row.id,
          `waits until ${isoMs(last + CURRENT_SPACING_MS)}: an installation's current changes at most every 15 minutes`,
        );
        w.nextAttemptAt = last + CURRENT_SPACING_MS;
        return;
      }
    }
    w.attempts++;
    let answer: WriteAnswer;
    try {
      answer = await this.#post(w);
    } catch (err) {
      this.#failedAttempt(w, err);
      return;
    }
    this.#answered(w, answer);
  }

  #post(w: InFlight): Promise<WriteAnswer> {
    const o = { deadline: this.#d.clock.now() + 5_000, signal: this.#abort.signal };
    if (w.chargerId) return this.#d.api.sendCommand(w.chargerId, COMMAND_IDS[w.row.action]!, o);
    const v = w.value!;
    const body =
      v.length === 1
        ? { availableCurrent: v[0]! }
        : { availableCurrentPhase1: v[0]!, availableCurrentPhase2: v[1]!, availableCurrentPhase3: v[2]! };
    return this.#d.api.updateInstallation(w.installationId!, body, o);
  }

  /** The installation's model as Zaptec now has it (the stored one is from the last inventory pass). */
  #remember(installationId: string, values: readonly unknown[]): void {
    if (!values.every((v) => typeof v === 'number')) return;
    const fields = currentFields(values.length).map((f, i) => [f, values[i] as number]);
    this.#d.inventory.mergeInstallationData(installationId, Object.fromEntries(fields));
  }

  #answered(w: InFlight, a: WriteAnswer): void {
    const now = this.#d.clock.now();
    if (a.status >= 200 && a.status < 300) return this.#sent(w, now, null);
    const rejection = a.status === 500 && a.code !== undefined ? REJECTIONS[a.code] : undefined;
    // DeauthorizeAndStop is answered 500/528 although it works; and a 528 after a send whose answer was lost
    // says the first one took effect (the command is now a no-op).
    if (a.code === 528 && (w.row.action === 'deauthorize' || w.uncertain))
      return this.#sent(
        w,
        now,
        `Zaptec answered ${REJECTIONS[528]}, as it does when the command took effect`,
      );
    if (rejection)
      return this.#finish(
        w,
        'rejected',
        `Zaptec rejected it: ${rejection}${a.details ? ` (${a.details})` : ''}`,
      );
    if (a.status === 404) return this.#finish(w, 'not_found', `Zaptec does not know the target (HTTP 404)`);
    if (a.status >= 400 && a.status < 500)
      return this.#finish(
        w,
        'rejected',
        `Zaptec refused it (HTTP ${a.status}${a.code ? `, code ${a.code}` : ''}${a.details ? `: ${a.details}` : ''})`,
      );
    this.#retryOrFail(w, `HTTP ${a.status}${a.code ? ` (code ${a.code})` : ''}`);
  }

  #failedAttempt(w: InFlight, err: unknown): void {
    if (err instanceof RateLimitedError) {
      // Not sent: the budget has no room yet. It waits, first in line.
      w.attempts--;
      this.#d.store.waiting(w.row.id, `waits for the API budget (until ${isoMs(err.retryAt)})`);
      w.nextAttemptAt = err.retryAt;
      return;
    }
    if (err instanceof HttpStatusError)
      return this.#answered(w, { status: err.status, code: undefined, details: undefined });
    if (!neverSent(err)) {
      // No answer: it may have reached Zaptec. A second restart is not harmless; the others are no-ops then.
      if (w.row.action === 'restart')
        return this.#finish(
          w,
          'failed',
          `no answer from Zaptec (${describeError(err)}); it may have been carried out, so it is not sent again`,
        );
      w.uncertain = true;
    }
    this.#retryOrFail(w, describeError(err));
  }

  #retryOrFail(w: InFlight, why: string): void {
    const now = this.#d.clock.now();
    const pause = RETRY_BASE_MS * 2 ** Math.max(0, w.attempts - 1);
    if (now + pause - w.firstAttemptAt > RETRY_FOR_MS)
      return this.#finish(
        w,
        'failed',
        `Zaptec did not take it within 2 minutes (${w.attempts} attempts; last: ${why})`,
      );
    w.nextAttemptAt = now + pause;
    this.#d.store.waiting(w.row.id, `retrying after ${why}`);
  }

  #sent(w: InFlight, now: number, detail: string | null): void {
    w.sentAt = now;
    this.#d.store.sent(w.row.id, now, detail);
    if (w.installationId) this.#remember(w.installationId, w.value!);
    this.#d.log.info(
      {
        command: w.row.id,
        action: w.row.action,
        target: w.row.target,
        value: w.row.value,
        requestedBy: w.row.requested_by,
      },
      `command ${w.row.id} sent: ${w.row.action} ${w.row.target}`,
    );
  }

  /** A sent command: confirmed by the change it should make, or `unconfirmed` after 2 minutes. */
  async #confirm(w: InFlight): Promise<void> {
    const now = this.#d.clock.now();
    if (await this.#changed(w)) return this.#finish(w, 'confirmed', null);
    if (now - w.sentAt! >= CONFIRM_WITHIN_MS)
      return this.#finish(
        w,
        'unconfirmed',
        'accepted by Zaptec; the expected change was not observed within 2 minutes',
      );
    if (!w.followedUp && now - w.sentAt! >= FOLLOW_UP_AFTER_MS && w.chargerId) {
      w.followedUp = true;
      this.#d.readSoon(w.chargerId);
    }
  }

  /** Whether the stored state shows the command's effect, observed after it was sent. */
  async #changed(w: InFlight): Promise<boolean> {
    const since = w.sentAt!;
    const after = (stateId: number, ok: (v: string | null) => boolean) => {
      const s = this.#d.observations.current(w.chargerId!, stateId);
      return s !== undefined && Date.parse(s.observed_at) >= since - 1_000 && ok(s.value);
    };
    switch (w.row.action) {
      case 'pause':
        return after(718, (v) => v === '1') || after(710, (v) => v !== '3');
      case 'resume':
        return after(718, (v) => v === '0') || after(710, (v) => v === '3');
      case 'restart':
        return after(-2, () => true);
      case 'deauthorize':
        return after(710, (v) => v !== '3');
      default: {
        // The installation's own settings, read once after the values had time to settle.
        if (w.followedUp || this.#d.clock.now() - since < FOLLOW_UP_AFTER_MS) return false;
        w.followedUp = true;
        const inst = await this.#d.api
          .installation(w.installationId!, { signal: this.#abort.signal })
          .catch(() => undefined);
        if (!inst) return false;
        const v = w.value!;
        const got = currentFields(v.length).map((f) => inst[f]);
        this.#remember(w.installationId!, got);
        return got.every((x, i) => x === v[i]);
      }
    }
  }

  #finish(w: InFlight, outcome: CommandOutcome, detail: string | null): void {
    this.#work.delete(w.row.id);
    this.#d.store.finish(w.row.id, outcome, detail, this.#d.clock.now());
    this.#d.onOutcome?.(w.row.action, outcome);
    const fields = {
      command: w.row.id,
      action: w.row.action,
      target: w.row.target,
      value: w.row.value,
      requestedBy: w.row.requested_by,
      outcome,
      detail,
    };
    const line = `command ${w.row.id} (${w.row.action} ${w.row.target}${w.row.value ? ` ${w.row.value}` : ''}, asked by ${w.row.requested_by ?? 'unknown'}): ${outcome}`;
    if (outcome === 'failed' || outcome === 'rejected') this.#d.log.warn(fields, line);
    else this.#d.log.info(fields, line);
  }
}
