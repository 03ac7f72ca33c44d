/**
 * The simulator's user groups (issue 16 §4): `/api/userGroups/{id}/messagingConnectionDetails` answers a
 * ConnectionDescriptor whose topic carries the events of every installation of the group, read here with the
 * real Service Bus SDK; a group without access answers 403, an unknown one 404; a rotated key is refused.
 */
import { join } from 'node:path';
import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpStatusError } from '../../src/http/errors.js';
import { Simulation } from '../../src/simulator/simulation.js';
import { openDatabase } from '../../src/store/database.js';
import { systemClock } from '../../src/time.js';
import { decodeObservation } from '../../src/zaptec/message.js';
import type { ConnectionDetails } from '../../src/zaptec/schemas.js';
import { tempDir, waitFor } from '../helpers.js';
import { simulatorClient } from '../sim-client.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function simulation() {
  const sim = new Simulation({ fleet: { seed: 3, installations: 3, chargersPerInstallation: 2 } });
  await sim.start();
  cleanups.push(() => sim.stop());
  const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
  const client = simulatorClient(sim.rest, { db, clock: systemClock });
  cleanups.push(async () => {
    await client.close();
    db.close();
  });
  return { sim, api: client.api };
}

function receive(sim: Simulation, d: ConnectionDetails) {
  const sb = new ServiceBusClient(
    `Endpoint=sb://127.0.0.1:${sim.broker.port}/;SharedAccessKeyName=${d.Username};SharedAccessKey=${d.Password};UseDevelopmentEmulator=true`,
    { retryOptions: { maxRetries: 0, retryDelayInMs: 500, timeoutInMs: 10_000 } },
  );
  cleanups.push(() => sb.close());
  const receiver = sb.createReceiver(d.Topic, d.Subscription, { receiveMode: 'peekLock' });
  const chargers: string[] = [];
  const errors: unknown[] = [];
  receiver.subscribe(
    {
      processMessage: async (m: ServiceBusReceivedMessage) => {
        chargers.push(decodeObservation(m.body).chargerId);
        await receiver.completeMessage(m);
      },
      processError: async (args) => {
        errors.push(args.error);
      },
    },
    { autoCompleteMessages: false },
  );
  return { chargers, errors };
}

describe('user groups in the simulator', () => {
  it("a group's subscription carries the events of its installations and of no other", async () => {
    const { sim, api } = await simulation();
    const [a, b, c] = [...sim.fleet.installations.keys()] as [string, string, string];
    const group = sim.addUserGroup([a, b]);
    expect(sim.env().ZAPTEC_USER_GROUPS).toBe(group);
    const details = await api.userGroupConnectionDetails(group);
    expect(details.Topic).not.toBe((await api.connectionDetails(a)).Topic);
    const got = receive(sim, details);
    const own = receive(sim, await api.connectionDetails(a));
    const ofInstallation = (id: string) =>
      [...sim.fleet.chargers.values()].filter((x) => x.installationId === id);
    for (const inst of [a, b, c])
      for (const charger of ofInstallation(inst))
        sim.publish(sim.fleet.set(charger.id, 513, '1', Date.now()));
    await waitFor(() => got.chargers.length === 4 && own.chargers.length === 2, {
      what: 'both subscriptions',
    });
    expect(new Set(got.chargers)).toEqual(
      new Set([...ofInstallation(a), ...ofInstallation(b)].map((x) => x.id)),
    );
    expect(new Set(own.chargers)).toEqual(new Set(ofInstallation(a).map((x) => x.id)));
    // Nothing of installation c arrives late on the group's topic either.
    await new Promise((r) => setTimeout(r, 300));
    expect(got.chargers).toHaveLength(4);
  });

  it('a group without access answers 403, an unknown one 404, and a rotated key is refused', async () => {
    const { sim, api } = await simulation();
    const group = sim.addUserGroup();
    const old = await api.userGroupConnectionDetails(group);
    sim.rotateKey(group);
    const refused = receive(sim, old);
    await waitFor(() => refused.errors.length > 0, { what: 'the old key refused' });
    expect(String((refused.errors[0] as { code?: string }).code)).toBe('UnauthorizedAccess');
    expect((await api.userGroupConnectionDetails(group)).Password).not.toBe(old.Password);
    sim.userGroups.get(group)!.status = 403;
    const denied = await api.userGroupConnectionDetails(group).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(HttpStatusError);
    expect((denied as HttpStatusError).status).toBe(403);
    const unknown = await api
      .userGroupConnectionDetails('00000000-0000-4000-8000-000000000001')
      .catch((e: unknown) => e);
    expect((unknown as HttpStatusError).status).toBe(404);
  });
});
