/**
 * The simulator's write endpoints, with Zaptec's behaviour (zaptec-api.md §2 "Write endpoints"):
 * - `POST /api/chargers/{id}/sendCommand/{commandId}`: 506 pauses a charging (or requesting) charger — 718
 *   FinalStopActive 1, 710 3 → 5, power 0 — and 507 resumes it; either as a no-op is rejected with HTTP 500
 *   `{"Code":528}`. 102 restarts it (offline, then online again a few seconds later). 10001 deauthorizes and
 *   stops, and answers 500 `{"Code":528}` although it works, as the real cloud does;
 * - `POST /api/installation/{id}/update`: sets the available current (one value or one per phase), or answers
 *   500 `{"Code":527}` for an installation under APM (Zaptec Sense), and 400 above its MaxCurrent.
 * Every change is pushed on the bus as Zaptec would.
 */
import type { Fleet, SimObservation } from './fleet.js';

const COMMAND_PATH = /^\/api\/chargers\/([0-9a-f-]{36})\/sendCommand\/(\d+)$/i;
const UPDATE_PATH = /^\/api\/installation\/([0-9a-f-]{36})\/update$/i;
/** How long a restarting charger is offline. */
const RESTART_OFFLINE_MS = 3_000;

export interface WriteAnswer {
  status: number;
  payload?: unknown;
}

export interface CommandSink {
  publish(o: SimObservation): void;
  /** Runs `fn` after `ms` of the simulation's clock. */
  later(ms: number, fn: () => void): void;
}

export class SimCommands {
  readonly #fleet: Fleet;
  readonly #sink: CommandSink;
  /** Every command and update received, with the status it was answered, for tests. */
  readonly received: { path: string; body: string; at: number; status: number }[] = [];

  constructor(fleet: Fleet, sink: CommandSink) {
    this.#fleet = fleet;
    this.#sink = sink;
  }

  /** The answer to a POST it knows, or undefined. */
  handle(path: string, body: string, at: number): WriteAnswer | undefined {
    const command = COMMAND_PATH.exec(path);
    const update = command ? null : UPDATE_PATH.exec(path);
    const answer = command
      ? this.#command(command[1]!.toLowerCase(), Number(command[2]), at)
      : update
        ? this.#update(update[1]!.toLowerCase(), body)
        : undefined;
    if (answer) this.received.push({ path, body, at, status: answer.status });
    return answer;
  }

  #command(chargerId: string, command: number, at: number): WriteAnswer {
    const c = this.#fleet.chargers.get(chargerId);
    if (!c?.active) return { status: 404, payload: { Message: 'not found' } };
    const value = (id: number) => c.state.get(id)?.value ?? null;
    const set = (id: number, v: string) => this.#sink.publish(this.#fleet.set(chargerId, id, v, at));
    const rejected = (details: string | null = null): WriteAnswer => ({
      status: 500,
      payload: { Code: 528, Details: details, StackTrace: null },
    });
    const mode = value(710);
    const stopped = value(718) === '1';
    switch (command) {
      case 506: // StopChargingFinal
        if ((mode !== '2' && mode !== '3') || stopped) return rejected();
        set(718, '1');
        set(513, '0');
        set(710, '5');
        return { status: 200 };
      case 507: // ResumeCharging
        if (!stopped || mode === '1')
          return rejected('Charging is not Paused nor Scheduled; Resume command cannot be sent');
        set(718, '0');
        set(710, '3');
        return { status: 200 };
      case 102: // RestartCharger
        set(-2, '0');
        this.#sink.later(RESTART_OFFLINE_MS, () =>
          this.#sink.publish(this.#fleet.set(chargerId, -2, '1', at + RESTART_OFFLINE_MS)),
        );
        return { status: 200 };
      case 10001: // DeauthorizeAndStop: done, yet answered 500/528 (custom-components/zaptec DEVELOPMENT.md)
        if (mode === '2' || mode === '3' || mode === '5') {
          set(513, '0');
          set(710, '2');
        }
        return rejected();
      default:
        return { status: 400, payload: { Code: 503, Details: `unknown command ${command}` } };
    }
  }

  #update(installationId: string, body: string): WriteAnswer {
    const inst = this.#fleet.installations.get(installationId);
    if (!inst?.active) return { status: 404, payload: { Message: 'not found' } };
    if (inst.apm)
      return { status: 500, payload: { Code: 527, Details: 'Cannot update installation when using APM' } };
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return { status: 400, payload: { Message: 'not JSON' } };
    }
    const phases = [b.availableCurrentPhase1, b.availableCurrentPhase2, b.availableCurrentPhase3];
    const values = typeof b.availableCurrent === 'number' ? [b.availableCurrent] : phases;
    if (!values.every((v) => typeof v === 'number' && v >= 0 && v <= inst.maxCurrent))
      return { status: 400, payload: { Code: 503, Details: 'invalid available current' } };
    inst.availableCurrent =
      values.length === 1 ? (values[0] as number) : (values as [number, number, number]);
    return { status: 200 };
  }
}
