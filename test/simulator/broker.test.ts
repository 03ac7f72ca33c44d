/** The simulator's broker with the real @azure/service-bus SDK (servicebus.md §1–2). */
import { isServiceBusError, ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceBusBroker } from '../../src/simulator/broker.js';
import { decodeObservation } from '../../src/zaptec/message.js';
import { encodeNbfx } from '../../src/zaptec/nbfx.js';
import { waitFor } from '../helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(options = {}) {
  const b = new ServiceBusBroker(options);
  b.setKey('key1', 'c2VjcmV0LWtleS1vbmU=');
  b.createSubscription('inst-topic', 'inst-sub', 'key1');
  const port = await b.start();
  cleanups.push(() => b.stop());
  return { b, port };
}

function client(port: number, key = 'c2VjcmV0LWtleS1vbmU=') {
  const c = new ServiceBusClient(
    `Endpoint=sb://127.0.0.1:${port}/;SharedAccessKeyName=key1;SharedAccessKey=${key};UseDevelopmentEmulator=true`,
    { retryOptions: { maxRetries: 0, retryDelayInMs: 500, timeoutInMs: 10_000 } },
  );
  cleanups.push(() => c.close());
  return c;
}

const body = (i: number) =>
  encodeNbfx(
    JSON.stringify({
      DeviceId: 'ZAP000001',
      DeviceType: 4,
      ChargerId: '93d603a7-ff53-4ed8-8dd6-f79c94819458',
      StateId: 513,
      Timestamp: new Date(1_700_000_000_000 + i).toISOString(),
      ValueAsString: String(i),
    }),
  );

describe('the simulator broker with the real SDK', () => {
  it('delivers Zaptec-shaped messages that are completed once each', async () => {
    const { b, port } = await broker();
    for (let i = 0; i < 300; i++) b.publish('inst-topic', body(i), { messageId: `m${i}` });
    const receiver = client(port).createReceiver('inst-topic', 'inst-sub', { receiveMode: 'peekLock' });
    const seen = new Set<string>();
    const sub = receiver.subscribe(
      {
        processMessage: async (m: ServiceBusReceivedMessage) => {
          expect(m.lockToken).toMatch(/^[0-9a-f-]{36}$/);
          expect(decodeObservation(m.body).value).toBe(String(m.messageId).slice(1));
          seen.add(String(m.messageId));
          await receiver.completeMessage(m);
        },
        processError: async () => {},
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 20 },
    );
    await waitFor(() => b.stats('inst-topic', 'inst-sub').completed === 300, { what: '300 completed' });
    await sub.close();
    expect(seen.size).toBe(300);
    expect(b.stats('inst-topic', 'inst-sub')).toMatchObject({
      ready: 0,
      locked: 0,
      completed: 300,
      deadLettered: 0,
    });
  });

  it('redelivers an abandoned message with one more delivery, and dead-letters with the reason given', async () => {
    const { b, port } = await broker();
    b.publish('inst-topic', body(1), { messageId: 'a' });
    b.publish('inst-topic', body(2), { messageId: 'd' });
    const receiver = client(port).createReceiver('inst-topic', 'inst-sub');
    const deliveries: [string, number][] = [];
    const sub = receiver.subscribe(
      {
        processMessage: async (m) => {
          deliveries.push([String(m.messageId), m.deliveryCount ?? -1]);
          if (m.messageId === 'd')
            await receiver.deadLetterMessage(m, {
              deadLetterReason: 'BadBody',
              deadLetterErrorDescription: 'why',
            });
          else if (m.deliveryCount === 0) await receiver.abandonMessage(m);
          else await receiver.completeMessage(m);
        },
        processError: async () => {},
      },
      { autoCompleteMessages: false },
    );
    await waitFor(
      () =>
        b.stats('inst-topic', 'inst-sub').completed === 1 &&
        b.stats('inst-topic', 'inst-sub').deadLettered === 1,
    );
    await sub.close();
    expect(deliveries).toEqual([
      ['a', 0],
      ['a', 1],
      ['d', 0],
    ]);
    const dl = b.stats('inst-topic', 'inst-sub').deadLetters;
    expect(dl.map((m) => m.applicationProperties)).toEqual([
      { DeadLetterReason: 'BadBody', DeadLetterErrorDescription: 'why' },
    ]);
  });

  it('gives the messages of a dropped connection back, and the SDK recovers by itself', async () => {
    const { b, port } = await broker();
    for (let i = 0; i < 50; i++) b.publish('inst-topic', body(i), { messageId: `m${i}` });
    const receiver = client(port).createReceiver('inst-topic', 'inst-sub');
    const seen = new Set<string>();
    let dropped = false;
    const sub = receiver.subscribe(
      {
        processMessage: async (m) => {
          if (!dropped && seen.size === 20) {
            dropped = true;
            b.dropConnections();
            return;
          }
          seen.add(String(m.messageId));
          await receiver.completeMessage(m).catch(() => {});
        },
        processError: async () => {},
      },
      { autoCompleteMessages: false },
    );
    await waitFor(() => b.stats('inst-topic', 'inst-sub').completed + 0 >= 50 || seen.size === 50, {
      what: 'all 50',
    });
    await waitFor(
      () => b.stats('inst-topic', 'inst-sub').ready === 0 && b.stats('inst-topic', 'inst-sub').locked === 0,
    );
    await sub.close();
    expect(seen.size).toBe(50);
  });

  it('refuses a wrong key (UnauthorizedAccess) and an unknown entity (MessagingEntityNotFound)', async () => {
    const { port } = await broker();
    const codes: string[] = [];
    const record = async (args: { error: Error }) => {
      const errs = args.error instanceof AggregateError ? args.error.errors : [args.error];
      for (const e of errs) if (isServiceBusError(e)) codes.push(e.code);
    };
    const bad = client(port, 'd3Jvbmcta2V5').createReceiver('inst-topic', 'inst-sub');
    const s1 = bad.subscribe({ processMessage: async () => {}, processError: record });
    await waitFor(() => codes.includes('UnauthorizedAccess'), { what: 'UnauthorizedAccess' });
    await s1.close();
    const missing = client(port).createReceiver('inst-topic', 'no-such-sub');
    const s2 = missing.subscribe({ processMessage: async () => {}, processError: record });
    await waitFor(() => codes.includes('MessagingEntityNotFound'), { what: 'MessagingEntityNotFound' });
    await s2.close();
  });
  it('detaches a link whose session the client left 2048 deliveries unsettled on, instead of throwing (the SDK attaches again)', async () => {
    // Found by the 365-day simulation: rhea frees a session's deliveries in order, so one never settled holds
    // every later one, and the 2048th after it made `send` throw inside the broker.
    const { b, port } = await broker({ lockDurationMs: 20, maxDeliveryCount: 1_000_000 });
    for (let i = 0; i < 100; i++) b.publish('inst-topic', body(i), { messageId: `m${i}` });
    const receiver = client(port).createReceiver('inst-topic', 'inst-sub');
    let deliveries = 0;
    const codes: string[] = [];
    const sub = receiver.subscribe(
      {
        processMessage: async () => {
          deliveries++; // never settled: each expired lock brings the message again, on the same session
        },
        processError: async (args) => {
          if (args.errorSource === 'receive' && isServiceBusError(args.error)) codes.push(args.error.code);
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 100 },
    );
    await waitFor(() => deliveries > 4_000, {
      what: 'twice the session buffer in deliveries',
      timeoutMs: 60_000,
    });
    await sub.close();
    expect(codes).toContain('ServiceBusy');
    const again = client(port).createReceiver('inst-topic', 'inst-sub');
    const sub2 = again.subscribe(
      {
        processMessage: async (m) => {
          await again.completeMessage(m).catch(() => {});
        },
        processError: async () => {},
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 100 },
    );
    await waitFor(() => b.stats('inst-topic', 'inst-sub').completed === 100, { what: 'all 100 completed' });
    await sub2.close();
  }, 90_000);
});
