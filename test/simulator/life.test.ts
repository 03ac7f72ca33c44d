/** issue 17 §4: the simulator's chargers end sessions with a 723 as Zaptec's cloud sends it. */
import { describe, expect, it } from 'vitest';
import { Fleet, type SimObservation } from '../../src/simulator/fleet.js';
import { FleetLife } from '../../src/simulator/life.js';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('simulated charging sessions', () => {
  it("end with a 723 CompletedSession of Zaptec's field set: GUID SessionId, microsecond UTC times, OCMF begin and end", () => {
    const fleet = new Fleet({ seed: 8, installations: 1, chargersPerInstallation: 3 });
    const seen: SimObservation[] = [];
    const life = new FleetLife(
      fleet,
      { publish: (o) => seen.push(o), publishNullCharger: () => {} },
      { eventsPerSecond: 3 },
    );
    let now = Date.parse('2026-11-30T08:00:00Z');
    while (seen.filter((o) => o.stateId === 723).length < 3 && now < Date.parse('2026-12-01T08:00:00Z')) {
      now += 1_000;
      life.tick(now, 1_000);
    }
    const completed = seen.filter((o) => o.stateId === 723);
    expect(completed.length).toBeGreaterThanOrEqual(3);
    for (const o of completed) {
      const v = JSON.parse(o.value!) as Record<string, unknown>;
      expect(Object.keys(v)).toEqual([
        'SessionId',
        'Energy',
        'StartDateTime',
        'EndDateTime',
        'ReliableClock',
        'StoppedByRFID',
        'AuthenticationCode',
        'SignedSession',
      ]);
      expect(v.SessionId).toMatch(GUID);
      expect(v.StartDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(Date.parse(v.EndDateTime as string)).toBeGreaterThan(Date.parse(v.StartDateTime as string));
      const ocmf = JSON.parse((v.SignedSession as string).replace(/^OCMF\|/, '')) as {
        GS: string;
        RD: { TX: string; RV: number }[];
      };
      expect(ocmf.GS).toBe(fleet.chargers.get(o.chargerId)!.deviceId);
      expect(ocmf.RD.map((r) => r.TX)).toEqual(['B', 'E']);
      expect(ocmf.RD[1]!.RV - ocmf.RD[0]!.RV).toBeCloseTo(v.Energy as number, 3);
    }
    // The id is the session's own: the 721 published when it began.
    const began = seen.filter((o) => o.stateId === 721 && o.value).map((o) => o.value);
    for (const o of completed)
      expect(began).toContain((JSON.parse(o.value!) as { SessionId: string }).SessionId);
  });
});
