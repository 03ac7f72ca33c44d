import { ServiceBusClient } from '@azure/service-bus';
import { ServiceBusBroker } from '/work/main/dist/simulator/broker.js';

const b = new ServiceBusBroker();
b.setKey('k', 'a2V5MQ==');
b.createSubscription('t', 's', 'k');
const port = await b.start();
const c = new ServiceBusClient(
  `Endpoint=sb://127.0.0.1:${port}/;SharedAccessKeyName=k;SharedAccessKey=a2V5MQ==;UseDevelopmentEmulator=true`,
  { retryOptions: { maxRetries: 2, retryDelayInMs: 1000, timeoutInMs: 30000 } },
);
const r = c.createReceiver('t', 's');
const t0 = Date.now();
r.subscribe(
  {
    processMessage: async (m) => {
      console.log('msg', m.body);
      await r.completeMessage(m);
    },
    processError: async (a) =>
      console.log(
        Date.now() - t0,
        'error',
        a.errorSource,
        a.error.name,
        a.error.code,
        a.error.message?.slice(0, 100),
        a.error.errors?.map((e) => e.code),
      ),
  },
  { autoCompleteMessages: false },
);
await new Promise((r) => setTimeout(r, 1500));
console.log('rotating; refused so far', b.refusedTokens);
b.rotateKey('k', 'a2V5Mg==');
await new Promise((r) => setTimeout(r, 500));
b.publish('t', 'hello');
await new Promise((r) => setTimeout(r, 10000));
console.log('refused', b.refusedTokens, b.stats('t', 's'));
process.exit(0);
