/** issue 18 §2: the named session patterns do what their names promise, on simulated time. */
import { describe, expect, it } from 'vitest';
import { SimCommands } from '../../src/simulator/commands.js';
import { Fleet, type SimObservation } from '../../src/simulator/fleet.js';
import { PatternLife, type SessionPattern } from '../../src/simulator/patterns.js';

const T0 = Date.parse('2026-11-30T00:00:00Z');
const HOUR = 3_600_000;

function live(pattern: SessionPattern, days: number, chargers = 40) {
  const fleet = new Fleet({ seed: 18, installations: 2, chargersPerInstallation: chargers / 2, now: T0 });
  const seen: SimObservation[] = [];
  const life = new PatternLife(
    fleet,
    { publish: (o) => seen.push(o), publishNullCharger: () => {} },
    pattern,
    T0,
  );
  const pluggedAtStart = fleet.activeChargers().filter((c) => c.state.get(710)?.value !== '1').length;
  const step = 5_000;
  for (let now = T0 + step; now <= T0 + days * 24 * HOUR; now += step) life.tick(now, step);
  // Per charger, its published 710 values in order.
  const modes = new Map<string, string[]>();
  for (const o of seen.filter((x) => x.stateId === 710)) {
    const list = modes.get(o.chargerId) ?? [];
    list.push(o.value!);
    modes.set(o.chargerId, list);
  }
  const ends = [...modes.values()].flat().filter((v) => v === '1').length;
  const withinSession = [...modes.values()].flat().filter((v) => v === '2' || v === '3' || v === '5').length;
  return { fleet, seen, life, modes, ends, withinSession, pluggedAtStart, chargerDays: chargers * days };
}

describe('session patterns', () => {
  it('realistic: 1–3 sessions per charger-day with a few pauses each, some chargers mid-session from the start', () => {
    const r = live('realistic', 10);
    const perDay = r.ends / r.chargerDays;
    expect(perDay).toBeGreaterThan(1.4);
    expect(perDay).toBeLessThan(2.6);
    expect(r.life.ended.length).toBe(r.ends);
    // A session is 2 → 3, pauses (3 → 2 → 3, 1–3 of them), 5; so about 4–9 mode changes inside it.
    const inside = r.withinSession / r.ends;
    expect(inside).toBeGreaterThan(3.5);
    expect(inside).toBeLessThan(9);
    // Steady state at once: about a fifth to a half of the fleet is plugged in at the start.
    expect(r.pluggedAtStart).toBeGreaterThan(4);
    expect(r.pluggedAtStart).toBeLessThan(24);
    // Every session a charger publishes starts by leaving 1 and ends by entering it.
    for (const list of r.modes.values())
      for (let i = 1; i < list.length; i++) expect(list[i]).not.toBe(list[i - 1]);
  });

  it('busy: about a session an hour', () => {
    const r = live('busy', 2);
    const perHour = r.ends / (r.chargerDays * 24);
    expect(perHour).toBeGreaterThan(0.85);
    expect(perHour).toBeLessThan(1.1);
  });

  it('starts in its steady state: the first hour ends as many sessions as any later one', () => {
    const r = live('realistic', 6, 400);
    const ends = r.life.ended.map((e) => Math.floor((e.at - T0) / HOUR));
    const first = ends.filter((h) => h === 0).length;
    const mean = ends.length / (6 * 24);
    // 400 chargers at 2 a day: about 33 an hour; the first hour within the Poisson spread of that.
    expect(first).toBeGreaterThan(mean * 0.6);
    expect(first).toBeLessThan(mean * 1.4);
  });

  it('flapping: while charging, the mode flips every 1–2 minutes; sessions stay 1–3 a day', () => {
    const r = live('flapping', 4);
    const perDay = r.ends / r.chargerDays;
    expect(perDay).toBeGreaterThan(1);
    expect(perDay).toBeLessThan(3);
    const chargingHours = r.life.chargingMs / HOUR;
    // Each stretch at 3 lasts 1–2 minutes and is entered and left: 60–120 changes per hour spent at 3.
    const flipsPerChargingHour = r.withinSession / chargingHours;
    expect(flipsPerChargingHour).toBeGreaterThan(60);
    expect(flipsPerChargingHour).toBeLessThan(120);
  });

  it("a session's end changes the final energy without a push and pushes most 723s", () => {
    const r = live('realistic', 5);
    let unpushed723 = 0;
    for (const end of r.life.ended) {
      const pushed = r.seen.filter((o) => o.chargerId === end.chargerId && o.at === end.at);
      expect(pushed.map((o) => o.stateId)).toEqual(expect.arrayContaining([710, 721]));
      expect(pushed.some((o) => o.stateId === 553)).toBe(false);
      if (!pushed.some((o) => o.stateId === 723)) unpushed723++;
    }
    // The fleet's state holds the final energy of each charger's last session at its end time.
    const last = new Map(r.life.ended.map((e) => [e.chargerId, e]));
    for (const [id, e] of last) {
      const s553 = r.fleet.chargers.get(id)!.state.get(553)!;
      if (r.fleet.chargers.get(id)!.state.get(710)!.value === '1')
        expect(s553).toEqual({ value: e.energy, at: e.at });
    }
    const share = unpushed723 / r.life.ended.length;
    expect(share).toBeGreaterThan(0.03);
    expect(share).toBeLessThan(0.2);
  });
});

describe('commands in the simulated fleet (issue 29 §3)', () => {
  /** A fleet living its sessions, with the write endpoints acting on it as Zaptec's would. */
  function acted(chargers = 20) {
    const fleet = new Fleet({ seed: 29, installations: 1, chargersPerInstallation: chargers, now: T0 });
    const seen: SimObservation[] = [];
    const sink = { publish: (o: SimObservation) => seen.push(o), publishNullCharger: () => {} };
    const life = new PatternLife(fleet, sink, 'realistic', T0);
    const commands = new SimCommands(fleet, { publish: sink.publish, later: () => {} });
    let now = T0;
    const run = (ms: number) => {
      for (const end = now + ms; now < end; ) {
        now += 5_000;
        life.tick(now, 5_000);
      }
    };
    return { fleet, seen, commands, run, now: () => now };
  }

  it('a paused charger stays paused (no 710 3, no power) until it is resumed or unplugged', () => {
    const w = acted();
    w.run(HOUR);
    const charger = w.fleet.activeChargers().find((c) => c.state.get(710)?.value === '3')!;
    expect(w.commands.handle(`/api/chargers/${charger.id}/sendCommand/506`, '', w.now())!.status).toBe(200);
    const from = w.seen.length;
    w.run(20 * 60_000);
    const after = w.seen.slice(from).filter((o) => o.chargerId === charger.id);
    const unplugged = after.findIndex((o) => o.stateId === 710 && o.value === '1');
    const whilePaused = unplugged === -1 ? after : after.slice(0, unplugged);
    expect(whilePaused.some((o) => o.stateId === 710 && o.value === '3')).toBe(false);
    expect(whilePaused.some((o) => o.stateId === 513 && o.value !== '0')).toBe(false);
    if (unplugged !== -1)
      expect(after.slice(unplugged).some((o) => o.stateId === 718 && o.value === '0')).toBe(true);
    else {
      expect(w.commands.handle(`/api/chargers/${charger.id}/sendCommand/507`, '', w.now())!.status).toBe(200);
      expect(charger.state.get(718)?.value).toBe('0');
    }
  });

  it("the installation's available current caps what its charging chargers draw", () => {
    const w = acted(20);
    const inst = [...w.fleet.installations.values()][0]!;
    w.run(2 * HOUR);
    const limited = 6;
    const body = JSON.stringify({ availableCurrent: limited });
    expect(w.commands.handle(`/api/installation/${inst.id}/update`, body, w.now())!.status).toBe(200);
    w.run(5 * 60_000); // each charging charger's next power report comes within 90 s
    const from = w.seen.length;
    w.run(HOUR);
    // Every power report an hour on: the charging chargers' total current stays within the available current.
    const byTime = new Map<number, number>();
    for (const o of w.seen.slice(from).filter((x) => x.stateId === 513)) {
      expect(Number(o.value) / 230 / 3).toBeLessThanOrEqual(limited + 1e-9);
      byTime.set(o.at, Number(o.value));
    }
    expect(byTime.size).toBeGreaterThan(0);
    const amps = (id: string) => Number(w.fleet.chargers.get(id)!.state.get(507)?.value ?? 0);
    const charging = w.fleet.activeChargers().filter((c) => c.state.get(710)?.value === '3');
    const total = charging.reduce((sum, c) => sum + amps(c.id), 0);
    expect(total).toBeLessThanOrEqual(limited * 1.25); // shares are recomputed at each report, not at once
  });
});
