/**
 * Chargers living realistic lives: cars arrive and leave (710: 1 → 2 → 3 → 5 → 1), power (513, W)
 * ramps up and down while charging, session energy (553, kWh) accumulates, the meter register (554,
 * OCMF) advances hourly, voltages and currents per phase, online/offline (-2), pulses (-1). Some
 * changes are made without a push, as Zaptec does (zaptec-api.md §3.4); now and then a charger is
 * added or removed, and the all-zero ChargerId shows up.
 */
import { randomUUID } from 'node:crypto';
import { type Fleet, ocmf, type SimCharger, type SimObservation } from './fleet.js';

export interface LifeOptions {
  /** Observations published per second, over the whole fleet (about). */
  eventsPerSecond: number;
  /** Share of session-energy updates kept without a push (polls find them). */
  unpushedShare?: number;
  /** Share of completed sessions whose 723 is never pushed (the charge history has them). */
  unpushedSessionShare?: number;
  /** Chance per tick that a charger is added or removed. */
  churn?: number;
  /** Chance that a car arrives at an idle charger, per step of that charger (sessions per day follow). */
  arrivalChance?: number;
}

interface Session {
  /** When the car arrived (710 → 2), and the meter then. */
  startedAt: number;
  meterAtStart: number;
  power: number;
  target: number;
  energyKwh: number;
  meterKwh: number;
}

export interface LifeSink {
  publish(o: SimObservation): void;
  publishNullCharger(installationId: string, at: number): void;
}

const MAX_POWER_W = 11_000;

export class FleetLife {
  readonly #fleet: Fleet;
  readonly #o: Required<LifeOptions>;
  readonly #sink: LifeSink;
  readonly #sessions = new Map<string, Session>();
  readonly #meters: HourlyMeters;
  #budget = 0;

  constructor(fleet: Fleet, sink: LifeSink, options: LifeOptions) {
    this.#fleet = fleet;
    this.#sink = sink;
    this.#meters = new HourlyMeters(fleet, sink);
    this.#o = { unpushedShare: 0.2, unpushedSessionShare: 0, churn: 0.0005, arrivalChance: 0.3, ...options };
  }

  /** Advances the fleet by `dtMs`; publishes what Zaptec would push. */
  tick(now: number, dtMs: number): void {
    const chargers = this.#fleet.activeChargers().filter((c) => c.installationId);
    if (chargers.length === 0) return;
    this.#budget += (this.#o.eventsPerSecond * dtMs) / 1000;
    const r = this.#fleet.random;
    while (this.#budget >= 1) {
      const c = chargers[Math.floor(r() * chargers.length)]!;
      this.#budget -= this.#step(c, now, dtMs);
    }
    this.#meters.tick(now, (c) => {
      const s = this.#session(c);
      return s.meterKwh + s.energyKwh;
    });
    if (r() < this.#o.churn) this.#churn(now);
    if (r() < 0.002) {
      const inst = [...this.#fleet.installations.keys()][Math.floor(r() * this.#fleet.installations.size)];
      if (inst) this.#sink.publishNullCharger(inst, now);
    }
  }

  #session(c: SimCharger): Session {
    let s = this.#sessions.get(c.id);
    if (!s) {
      s = {
        startedAt: 0,
        meterAtStart: 0,
        power: 0,
        target: 0,
        energyKwh: 0,
        meterKwh: 1000 + this.#fleet.random() * 4000,
      };
      this.#sessions.set(c.id, s);
    }
    return s;
  }

  /** One change of one charger; returns how many observations it published. */
  #step(c: SimCharger, now: number, dtMs: number): number {
    const r = this.#fleet.random;
    const mode = c.state.get(710)?.value ?? '1';
    const s = this.#session(c);
    const push = (stateId: number, value: string | null) =>
      this.#sink.publish(this.#fleet.set(c.id, stateId, value, now));
    const silently = (stateId: number, value: string | null) => this.#fleet.set(c.id, stateId, value, now);
    const roll = r();
    if (roll < 0.02) {
      push(-1, null); // a pulse
      return 1;
    }
    if (roll < 0.025) {
      const online = c.state.get(-2)?.value !== '0';
      push(-2, online ? '0' : '1');
      return 1;
    }
    switch (mode) {
      case '1':
        if (r() < this.#o.arrivalChance) {
          push(710, '2');
          push(721, randomUUID());
          s.energyKwh = 0;
          s.startedAt = now;
          s.meterAtStart = s.meterKwh;
          return 2;
        }
        push(501 + Math.floor(r() * 3), (228 + r() * 6).toFixed(3));
        return 1;
      case '2':
        s.target = 3_700 + r() * (MAX_POWER_W - 3_700);
        push(710, '3');
        return 1;
      case '3': {
        const ending = r() < 0.08;
        s.power = ending ? 0 : Math.min(s.target, s.power + s.target * (0.25 + r() * 0.25));
        s.energyKwh += (s.power * Math.max(dtMs, 1000) * 10) / 3_600_000_000;
        push(513, s.power.toFixed(0));
        const amps = (s.power / 230 / 3).toFixed(3);
        for (const id of [507, 508, 509]) silently(id, amps);
        const energy = s.energyKwh.toFixed(3);
        if (r() < this.#o.unpushedShare) silently(553, energy);
        else push(553, energy);
        if (ending) {
          push(710, '5');
          return 3;
        }
        return 2;
      }
      default:
        if (r() < 0.4) {
          // The session's id is the 721 it began with (cleared as it ends): the 723 carries it.
          const sessionId = c.state.get(721)?.value || randomUUID();
          push(710, '1');
          push(721, '');
          const session = this.#fleet.completeSession({
            chargerId: c.id,
            sessionId,
            startedAt: s.startedAt || now - 3_600_000,
            endedAt: now,
            meterStartKwh: s.meterAtStart || s.meterKwh,
            energyKwh: s.energyKwh,
          });
          // Some 723s never arrive (a charger that was offline): only the charge history has them.
          if (r() < this.#o.unpushedSessionShare) silently(723, session.completed);
          else push(723, session.completed);
          s.meterKwh += s.energyKwh;
          return 3;
        }
        silently(513, '0');
        return 1;
    }
  }

  #churn(now: number): void {
    const r = this.#fleet.random;
    const installations = [...this.#fleet.installations.keys()];
    if (r() < 0.6 && installations.length > 0) {
      this.#fleet.addCharger(installations[Math.floor(r() * installations.length)]!, now);
    } else {
      const active = this.#fleet.activeChargers();
      if (active.length > 1) this.#fleet.removeCharger(active[Math.floor(r() * active.length)]!.id);
    }
  }
}

/** The signed meter value (554) advances on the hour, as a Go's does: published from the second hour on. */
export class HourlyMeters {
  readonly #fleet: Fleet;
  readonly #sink: LifeSink;
  readonly #lastHour = new Map<string, number>();

  constructor(fleet: Fleet, sink: LifeSink) {
    this.#fleet = fleet;
    this.#sink = sink;
  }

  /** `kwh` is a charger's lifetime register now. */
  tick(now: number, kwh: (c: SimCharger) => number): void {
    const hour = Math.floor(now / 3_600_000);
    for (const c of this.#fleet.activeChargers()) {
      const last = this.#lastHour.get(c.id);
      if (last === hour) continue;
      this.#lastHour.set(c.id, hour);
      const value = ocmf(c.deviceId, kwh(c), hour * 3_600_000);
      if (last === undefined) this.#fleet.set(c.id, 554, value, hour * 3_600_000);
      else this.#sink.publish(this.#fleet.set(c.id, 554, value, now));
    }
  }
}
