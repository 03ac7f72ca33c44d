/** The real Zaptec client pointed at a `RestSimulator`, as the user the simulator created first (tests, benchmarks). */
import { createLogger } from '../src/log.js';
import type { RestSimulator } from '../src/simulator/rest.js';
import type { Db } from '../src/store/database.js';
import { SqliteBudgetLedger } from '../src/store/sqlite/budget-ledger.js';
import { createZaptecClient, type ZaptecClient, type ZaptecClientOptions } from '../src/zaptec/client.js';

export type SimulatorClientOptions = Pick<ZaptecClientOptions, 'clock'> & { db: Db } & Partial<
    Omit<ZaptecClientOptions, 'apiUrl' | 'username' | 'password' | 'ledger'>
  >;

export function simulatorClient(sim: RestSimulator, o: SimulatorClientOptions): ZaptecClient {
  const user = sim.users[0];
  if (!user) throw new Error('the simulator has no user');
  const { db, ...rest } = o;
  return createZaptecClient({
    requestsPerMinute: 600,
    version: 'test',
    log: createLogger({ level: 'silent' }),
    ...rest,
    ledger: new SqliteBudgetLedger(db),
    apiUrl: sim.url,
    username: user.username,
    password: user.password,
  });
}
