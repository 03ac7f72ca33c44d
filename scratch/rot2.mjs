import { ServiceBusClient } from '@azure/service-bus';
import { ServiceBusBroker } from '../dist/simulator/broker.js';

const b = new ServiceBusBroker();
b.setKey('k', 'a2V5MQ==');
b.createSubscription('t', 's', 'k');
const port = await b.start();
const c = new ServiceBusClient(
  `Endpoint=sb://127.0.0.1:${port}/;SharedAccessKeyName=k;SharedAccessKey=a2V5MQ==;UseDevelopmentEmulator=true`,
  { retryOptions: { maxRetries: 2, retryDelayInMs: 1000, timeoutInMs: 30000 } },
);
const r = c.createReceiver('t', 's');
r.subscribe(
  {
    processMessage: async (m) => {
      console.log('msg', m.body);
      await r.completeMessage(m);
    },
    processError: async (a) => console.log('error', a.errorSource, a.error.code),
  },
  { autoCompleteMessages: false },
);
await new Promise((r) => setTimeout(r, 1500));
const conns = [...(b['_debugConnections']?.() ?? [])];
console.log('connections', conns.length);
