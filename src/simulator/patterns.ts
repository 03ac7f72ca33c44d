/**
 * Named session patterns, lived on the clock (issue 18): each charger follows its own timeline of sessions
 * instead of the demo's random steps, so a benchmark can say what a fleet does per charger-hour.
 * - realistic: 1–3 sessions per charger-day, plugged in 1–8 h, charging part of it with a few pauses (3 → 2 → 3);
 * - busy: a session an hour (plugged in 30–50 min, gone 10–30 min);
 * - flapping: realistic sessions whose charging flips between 3 (charging) and 2 (waiting for current) every
 *   1–2 minutes, as under load management.
 * A session starts when 710 leaves 1 and ends when it enters 1 again; at the end Zaptec pushes the mode and
 * the 723 (a share is never pushed), but the final session energy (553) changes without a push, as on the
 * real cloud: only a state read finds it. The fleet starts in its steady state (some chargers mid-session).
 */
import { randomUUID } from 'node:crypto';
import type { Fleet, SimCharger } from './fleet.js';
import { HourlyMeters, type LifeSink } from './life.js';
import { seededRandom } from './random.js';

export const SESSION_PATTERNS = ['realistic', 'busy', 'flapping'] as const;
export type SessionPattern = (typeof SESSION_PATTERNS)[number];

const MIN = 60_000;
const HOUR = 60 * MIN;

interface PatternSpec {
  /** Sessions per charger-day, drawn once per charger from this range. */
  sessionsPerDay: [number, number];
  /** How long a car stays plugged in. */
  pluggedMs: [number, number];
  /** How much of that it charges (pauses included); the rest is 5, finished. */
  chargingMs: [number, number];
  /** Pauses of 2–15 minutes per session (3 → 2 → 3). */
  pauses: [number, number];
  /** Load management: charging flips 3 ↔ 2 every this long. */
  flapMs?: [number, number];
  /** The gap between sessions, when it is not derived from the sessions per day. */
  idleMs?: [number, number];
}

const SPECS: Record<SessionPattern, PatternSpec> = {
  realistic: {
    sessionsPerDay: [1, 3],
    pluggedMs: [1 * HOUR, 8 * HOUR],
    chargingMs: [30 * MIN, 3 * HOUR],
    pauses: [1, 3],
  },
  busy: {
    sessionsPerDay: [24, 24],
    pluggedMs: [30 * MIN, 50 * MIN],
    chargingMs: [15 * MIN, 30 * MIN],
    pauses: [0, 1],
    idleMs: [10 * MIN, 30 * MIN],
  },
  flapping: {
    sessionsPerDay: [1, 3],
    pluggedMs: [2 * HOUR, 8 * HOUR],
    chargingMs: [1 * HOUR, 4 * HOUR],
    pauses: [0, 0],
    flapMs: [1 * MIN, 2 * MIN],
  },
};

const DAY = 24 * HOUR;

/**
 * Values that change without a push and without a session: what reconciliation reads are for, so that a
 * quiet charger's "nothing to reveal" is earned. Per charger, each at its own mean interval (exponential):
 * - 510 ChargerMaxCurrent, a setting changed in the Zaptec Portal: about once a week;
 * - 911 SmartComputerSoftwareApplicationVersion, after a firmware update: about once a month; the charger
 *   restarts for it (-2 IsOnline 0, then 1 a minute later, both pushed), as a real one does.
 * Each is also in `silent`, for the simulation's invariants and the benchmarks' freshness.
 */
export const SILENT_CHANGES = [
  {
    stateId: 510,
    meanMs: 7 * DAY,
    value: (r: number) => String([6, 10, 13, 16, 20, 25, 32][Math.floor(r * 7)]),
  },
  {
    stateId: 911,
    meanMs: 30 * DAY,
    value: (r: number) => `4.${Math.floor(r * 20)}.${Math.floor(r * 1000) % 10}.0`,
  },
] as const;

/** A firmware update's restart: offline this long. */
const FIRMWARE_RESTART_MS = 60_000;

/** A value that changed without a push. */
export interface SilentChange {
  chargerId: string;
  stateId: number;
  value: string;
  at: number;
}

/** Share of 723s Zaptec never pushes (an offline charger's session arrives through the charge history). */
const UNPUSHED_723_SHARE = 0.1;
/** While charging, power and session energy are pushed this often. */
const TELEMETRY_MS: [number, number] = [30_000, 90_000];
/** Otherwise a voltage or a pulse now and then. */
const IDLE_TELEMETRY_MS: [number, number] = [10 * MIN, 20 * MIN];
const MAX_POWER_W = 11_000;

type Phase = 'idle' | 'requesting' | 'charging' | 'paused' | 'finished';

interface Timeline {
  charger: SimCharger;
  sessionsPerDay: number;
  phase: Phase;
  /** When the phase changes next. */
  next: number;
  telemetryAt: number;
  /** When each of SILENT_CHANGES comes next, and the charger's own random stream for them. */
  silentAt: number[];
  silentRandom: () => number;
  /** A firmware update's restart: back online at this time (-2 pushed), or 0. */
  onlineAt: number;
  startedAt: number;
  meterAtStart: number;
  chargeEnd: number;
  plugEnd: number;
  pausesLeft: number;
  power: number;
  energyKwh: number;
}

/** A session that ended: when, and the final energy only a state read brings. */
export interface EndedSession {
  chargerId: string;
  at: number;
  energy: string;
}

export class PatternLife {
  readonly #fleet: Fleet;
  readonly #sink: LifeSink;
  readonly #spec: PatternSpec;
  readonly #timelines = new Map<string, Timeline>();
  readonly #meters: HourlyMeters;
  readonly #warmFrom: number;
  #muted = false;
  /** Charger-milliseconds spent in 710 = 3 (the Home Assistant model polls faster then). */
  chargingMs = 0;
  /** Charger-milliseconds lived. */
  chargerMs = 0;
  sessionsStarted = 0;
  readonly ended: EndedSession[] = [];
  /** Values changed without a push since the fleet started living (not while warming up). */
  readonly silent: SilentChange[] = [];
  /** 710 changes published (boundaries and within sessions). */
  modeChanges = 0;

  constructor(fleet: Fleet, sink: LifeSink, pattern: SessionPattern, now: number) {
    this.#fleet = fleet;
    this.#warmFrom = now;
    // While warming up nothing is published (the fleet's state and charge history still change).
    this.#sink = {
      publish: (o) => this.#muted || sink.publish(o),
      publishNullCharger: (i, at) => this.#muted || sink.publishNullCharger(i, at),
    };
    this.#spec = SPECS[pattern];
    this.#meters = new HourlyMeters(fleet, sink);
    for (const c of fleet.activeChargers()) if (c.installationId) this.#begin(c, now);
  }

  /**
   * Lives from the construction time to `until` without publishing (what happened before anyone listened),
   * so that a fleet made now is in the middle of its days: sessions at every stage, ends at their steady rate.
   */
  warmUp(until: number, stepMs = 5_000): void {
    this.#muted = true;
    const from = this.#warmFrom;
    for (let now = from + stepMs; now <= until; now += stepMs) this.tick(now, stepMs);
    this.#muted = false;
    this.chargingMs = 0;
    this.chargerMs = 0;
    this.sessionsStarted = 0;
    this.modeChanges = 0;
    this.ended.length = 0;
  }

  /** Advances every charger to `now`, publishing what Zaptec would push. */
  tick(now: number, dtMs: number): void {
    for (const c of this.#fleet.activeChargers()) {
      if (!c.installationId) continue;
      const t = this.#timelines.get(c.id) ?? this.#begin(c, now);
      this.chargerMs += dtMs;
      if (t.phase === 'charging') {
        this.chargingMs += dtMs;
        t.energyKwh += (t.power * dtMs) / HOUR / 1000;
      }
      // Several phases may be due after a long tick: each in turn, at its own time.
      for (let guard = 0; guard < 8 && t.next <= now; guard++) this.#advance(t, t.next);
      if (t.telemetryAt <= now) this.#telemetry(t, now);
      this.#silentChanges(t, now);
    }
    this.#meters.tick(now, (c) => {
      const t = this.#timelines.get(c.id);
      return t ? t.meterAtStart + t.energyKwh : 1000;
    });
  }

  /** The values of SILENT_CHANGES that are due: set without a push, and remembered. */
  #silentChanges(t: Timeline, now: number): void {
    if (t.onlineAt && t.onlineAt <= now) {
      this.#sink.publish(this.#fleet.set(t.charger.id, -2, '1', t.onlineAt));
      t.onlineAt = 0;
    }
    SILENT_CHANGES.forEach((k, i) => {
      if (t.silentAt[i]! > now) return;
      const at = t.silentAt[i]!;
      const value = k.value(t.silentRandom());
      this.#fleet.set(t.charger.id, k.stateId, value, at);
      if (!this.#muted) this.silent.push({ chargerId: t.charger.id, stateId: k.stateId, value, at });
      if (k.stateId === 911) {
        this.#sink.publish(this.#fleet.set(t.charger.id, -2, '0', at));
        t.onlineAt = at + FIRMWARE_RESTART_MS;
      }
      t.silentAt[i] = at + exponential(t.silentRandom(), k.meanMs);
    });
  }

  /** A charger's timeline, started in the steady state: mid-session with the share of time plugged in. */
  #begin(c: SimCharger, now: number): Timeline {
    const r = this.#fleet.random;
    const s = this.#spec;
    // A stream of its own per charger: the fleet's sessions stay what they were for a seed.
    const silentRandom = seededRandom(Number.parseInt(c.id.replace(/-/g, '').slice(0, 8), 16) || 1);
    const t: Timeline = {
      charger: c,
      sessionsPerDay: between(r(), s.sessionsPerDay),
      phase: 'idle',
      next: now,
      telemetryAt: now + between(r(), IDLE_TELEMETRY_MS),
      silentAt: SILENT_CHANGES.map((k) => now + exponential(silentRandom(), k.meanMs)),
      silentRandom,
      onlineAt: 0,
      startedAt: 0,
      meterAtStart: 1000 + r() * 4000,
      chargeEnd: 0,
      plugEnd: 0,
      pausesLeft: 0,
      power: 0,
      energyKwh: 0,
    };
    this.#timelines.set(c.id, t);
    const plugged = mean(s.pluggedMs);
    const idle = this.#meanIdle(t);
    if (r() < plugged / (plugged + idle)) {
      // Mid-session: the car came some time ago; the values it has now are set without a push. A session
      // in progress at a random moment is a long one more often (length-biased: density ∝ its length), and
      // the moment falls anywhere in it: so session ends come at their steady rate from the first minute.
      const [lo, hi] = s.pluggedMs;
      const length = Math.sqrt(lo * lo + r() * (hi * hi - lo * lo));
      this.#plugIn(t, now - r() * length, false, length);
      for (let guard = 0; guard < 64 && t.next <= now; guard++) this.#advance(t, t.next, false);
      // About 7 kW over the time it has charged so far.
      if (t.phase !== 'idle')
        t.energyKwh = (Math.max(0, Math.min(now, t.chargeEnd) - t.startedAt) / HOUR) * 7;
      const set = (id: number, v: string) => this.#fleet.set(c.id, id, v, now);
      set(710, modeOf(t.phase));
      set(721, t.phase === 'idle' ? '' : randomUUID());
      set(553, t.energyKwh.toFixed(3));
      set(513, t.phase === 'charging' ? t.power.toFixed(0) : '0');
    } else {
      t.next = now + this.#idleGap(t);
    }
    return t;
  }

  #meanIdle(t: Timeline): number {
    const s = this.#spec;
    return s.idleMs ? mean(s.idleMs) : Math.max(10 * MIN, (24 * HOUR) / t.sessionsPerDay - mean(s.pluggedMs));
  }

  #idleGap(t: Timeline): number {
    const r = this.#fleet.random;
    if (this.#spec.idleMs) return between(r(), this.#spec.idleMs);
    return -Math.log(1 - r()) * this.#meanIdle(t);
  }

  #plugIn(
    t: Timeline,
    at: number,
    push = true,
    length = between(this.#fleet.random(), this.#spec.pluggedMs),
  ): void {
    const r = this.#fleet.random;
    const s = this.#spec;
    t.phase = 'requesting';
    t.startedAt = at;
    t.energyKwh = 0;
    t.plugEnd = at + length;
    t.chargeEnd = Math.min(t.plugEnd - MIN, at + between(r(), s.chargingMs));
    t.pausesLeft = Math.round(between(r(), s.pauses));
    t.next = at + between(r(), [5_000, 60_000]);
    if (push) {
      this.sessionsStarted++;
      this.#mode(t, at);
      this.#sink.publish(this.#fleet.set(t.charger.id, 721, randomUUID(), at));
    }
  }

  /** The phase change due at `at`. */
  #advance(t: Timeline, at: number, push = true): void {
    const r = this.#fleet.random;
    const s = this.#spec;
    switch (t.phase) {
      case 'idle':
        this.#plugIn(t, at, push);
        return;
      case 'requesting':
      case 'paused':
        t.phase = at >= t.chargeEnd ? 'finished' : 'charging';
        t.power =
          t.phase === 'charging' ? Math.min(this.#cap(t.charger), 3_700 + r() * (MAX_POWER_W - 3_700)) : 0;
        t.next = t.phase === 'finished' ? t.plugEnd : this.#nextInterruption(t, at);
        // Paused by a command (506): it does not charge again until resumed (507) or unplugged.
        if (t.phase === 'charging' && stopped(t)) {
          t.phase = 'paused';
          t.power = 0;
          return;
        }
        break;
      case 'charging':
        t.power = 0;
        if (at >= t.chargeEnd) {
          t.phase = 'finished';
          t.next = t.plugEnd;
        } else {
          t.phase = 'paused';
          if (s.flapMs) t.next = at + between(r(), s.flapMs);
          else {
            t.pausesLeft--;
            t.next = at + between(r(), [2 * MIN, 15 * MIN]);
          }
          t.next = Math.min(t.next, t.plugEnd - 1);
        }
        break;
      case 'finished':
        this.#leave(t, at, push);
        return;
    }
    if (push && !stopped(t)) {
      this.#mode(t, at);
      this.#sink.publish(this.#fleet.set(t.charger.id, 513, t.power.toFixed(0), at));
    }
  }

  /** The next pause or flap while charging, or the end of charging. */
  #nextInterruption(t: Timeline, at: number): number {
    const r = this.#fleet.random;
    const s = this.#spec;
    if (s.flapMs) return Math.min(t.chargeEnd, at + between(r(), s.flapMs));
    if (t.pausesLeft <= 0) return t.chargeEnd;
    return Math.min(t.chargeEnd, at + r() * (t.chargeEnd - at));
  }

  /** The car leaves: 710 → 1 and the 723 pushed; the final energy changes without a push. */
  #leave(t: Timeline, at: number, push: boolean): void {
    const c = t.charger;
    const sessionId = c.state.get(721)?.value || randomUUID();
    const energy = t.energyKwh.toFixed(3);
    t.phase = 'idle';
    t.next = at + this.#idleGap(t);
    if (!push) return;
    // Unplugging ends a pause that a command (506) set.
    if (stopped(t)) this.#sink.publish(this.#fleet.set(c.id, 718, '0', at));
    this.#mode(t, at);
    this.#sink.publish(this.#fleet.set(c.id, 721, '', at));
    this.#fleet.set(c.id, 553, energy, at);
    this.#fleet.set(c.id, 513, '0', at);
    const session = this.#fleet.completeSession({
      chargerId: c.id,
      sessionId,
      startedAt: t.startedAt,
      endedAt: at,
      meterStartKwh: t.meterAtStart,
      energyKwh: t.energyKwh,
    });
    const completed = this.#fleet.set(c.id, 723, session.completed, at);
    if (this.#fleet.random() >= UNPUSHED_723_SHARE) this.#sink.publish(completed);
    t.meterAtStart += t.energyKwh;
    t.energyKwh = 0;
    this.ended.push({ chargerId: c.id, at, energy });
  }

  #mode(t: Timeline, at: number): void {
    this.modeChanges++;
    this.#sink.publish(this.#fleet.set(t.charger.id, 710, modeOf(t.phase), at));
  }

  /**
   * The most a charging charger may draw, W: its share of the installation's available current, where that was
   * set below the installation's MaxCurrent (one value, or the lowest phase), shared by the chargers charging there, over
   * three phases at 230 V.
   */
  #cap(c: SimCharger): number {
    const inst = c.installationId ? this.#fleet.installations.get(c.installationId) : undefined;
    if (!inst) return Infinity;
    const available = Array.isArray(inst.availableCurrent)
      ? Math.min(...inst.availableCurrent)
      : inst.availableCurrent;
    if (available >= inst.maxCurrent) return Infinity;
    let charging = 1; // this one, about to charge or charging
    for (const other of this.#fleet.chargers.values())
      if (other !== c && other.installationId === inst.id && other.state.get(710)?.value === '3') charging++;
    return (available / charging) * 230 * 3;
  }

  /** Power and energy while charging (a share of the energy silently), a voltage or a pulse otherwise. */
  #telemetry(t: Timeline, now: number): void {
    const r = this.#fleet.random;
    const c = t.charger;
    if (t.phase === 'charging' && !stopped(t)) {
      t.telemetryAt = now + between(r(), TELEMETRY_MS);
      t.power = Math.min(this.#cap(c), Math.max(1_000, Math.min(MAX_POWER_W, t.power * (0.95 + r() * 0.1))));
      this.#sink.publish(this.#fleet.set(c.id, 513, t.power.toFixed(0), now));
      const amps = (t.power / 230 / 3).toFixed(3);
      for (const id of [507, 508, 509]) this.#fleet.set(c.id, id, amps, now);
      const energy = this.#fleet.set(c.id, 553, t.energyKwh.toFixed(3), now);
      if (r() >= 0.2) this.#sink.publish(energy);
      return;
    }
    t.telemetryAt = now + between(r(), IDLE_TELEMETRY_MS);
    if (r() < 0.5) this.#sink.publish(this.#fleet.set(c.id, -1, null, now));
    else
      this.#sink.publish(this.#fleet.set(c.id, 501 + Math.floor(r() * 3), (228 + r() * 6).toFixed(3), now));
  }
}

/** Paused by a command: 718 FinalStopActive 1. */
function stopped(t: Timeline): boolean {
  return t.charger.state.get(718)?.value === '1';
}

function modeOf(phase: Phase): string {
  return { idle: '1', requesting: '2', charging: '3', paused: '2', finished: '5' }[phase];
}

function between(u: number, [lo, hi]: [number, number]): number {
  return lo + u * (hi - lo);
}

function mean([lo, hi]: [number, number]): number {
  return (lo + hi) / 2;
}

/** An exponentially distributed wait with this mean, from a uniform draw in [0, 1). */
function exponential(u: number, meanMs: number): number {
  return -Math.log(1 - u) * meanMs;
}
