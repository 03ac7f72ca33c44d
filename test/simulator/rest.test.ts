/** The simulator's REST API answers what real clients ask of Zaptec (issue 18 §2). */
import { describe, expect, it } from 'vitest';
import { Fleet } from '../../src/simulator/fleet.js';
import { RestSimulator } from '../../src/simulator/rest.js';

describe('the simulated REST API', () => {
  it("serves /api/chargerFirmware/installation/{id}, as Home Assistant reads it daily, and the operation modes' names", async () => {
    const fleet = new Fleet({ seed: 2, installations: 2, chargersPerInstallation: 3 });
    const sim = new RestSimulator({ fleet });
    await sim.start();
    try {
      const user = sim.users[0]!;
      const token = (await (
        await fetch(`${sim.url}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'password',
            username: user.username,
            password: user.password,
          }),
        })
      ).json()) as { access_token: string };
      const get = (path: string) =>
        fetch(`${sim.url}${path}`, { headers: { authorization: `Bearer ${token.access_token}` } });
      const inst = [...fleet.installations.keys()][0]!;
      const res = await get(`/api/chargerFirmware/installation/${inst}`);
      expect(res.status).toBe(200);
      const list = (await res.json()) as { ChargerId: string; IsUpToDate: boolean; CurrentVersion: string }[];
      expect(list.map((f) => f.ChargerId).sort()).toEqual(
        [...fleet.chargers.values()]
          .filter((c) => c.installationId === inst)
          .map((c) => c.id)
          .sort(),
      );
      expect(list[0]).toMatchObject({ IsUpToDate: true, CurrentVersion: expect.any(String) });
      const constants = (await (await get('/api/constants')).json()) as {
        ChargerOperationModes: Record<string, number>;
      };
      expect(constants.ChargerOperationModes).toMatchObject({ Disconnected: 1, Connected_Charging: 3 });
    } finally {
      await sim.stop();
    }
  });
});
