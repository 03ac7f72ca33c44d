/**
 * `simulate`: a local stand-in for the Zaptec cloud on loopback — the REST API with Zaptec's limits and
 * 15 s state cache, and a Service Bus broker the SDK accepts — whose chargers live charging sessions.
 * Prints the environment that points `run` at it; exits 0 on SIGTERM/SIGINT.
 */
import { SESSION_PATTERNS, type SessionPattern } from '../simulator/patterns.js';
import { Simulation } from '../simulator/simulation.js';
import { parseCommandArgs, UsageError } from './args.js';

export interface SimulateOptions {
  installations: number;
  chargers: number;
  deviceTypes: number[];
  rate: number;
  /** A named session pattern instead of `rate` random observations a second. */
  sessions: SessionPattern | undefined;
  port: number;
  brokerPort: number;
  seed: number;
  /** One user group whose subscription carries every installation's events (CONTRACT §5). */
  userGroup: boolean;
  /** Days of completed sessions already in each charger's charge history. */
  pastDays: number;
}

export const SIMULATE_USAGE = `options:
  --installations <n>    installations (default 3)
  --chargers <n>         chargers per installation (default 4)
  --device-types <list>  device types to cycle through: 4 Go, 1 Pro (default 4,1)
  --rate <n>             observations published per second over the fleet (default 5)
  --sessions <pattern>   instead of --rate, each charger lives a session pattern: realistic (1–3
                         sessions a day), busy (one an hour) or flapping (load management flips the
                         mode every 1–2 minutes while charging)
  --port <n>             REST port (default: any free one)
  --broker-port <n>      AMQP port (default: any free one)
  --seed <n>             the fleet is the same for the same seed (default 1)
  --past-days <n>        days of completed sessions already in the charge history (default 0; demo: 3)
  --user-group           also a user group carrying every installation's events on one subscription;
                         prints its ZAPTEC_USER_GROUPS`;

export function parseSimulateArgs(
  args: string[],
  defaults: Partial<Record<string, string>> = {},
): SimulateOptions {
  const { values } = parseCommandArgs(
    args,
    {
      installations: { type: 'string', default: defaults.installations ?? '3' },
      chargers: { type: 'string', default: defaults.chargers ?? '4' },
      'device-types': { type: 'string', default: '4,1' },
      rate: { type: 'string', default: defaults.rate ?? '5' },
      sessions: { type: 'string' },
      port: { type: 'string', default: '0' },
      'broker-port': { type: 'string', default: '0' },
      seed: { type: 'string', default: '1' },
      'user-group': { type: 'boolean', default: false },
      'past-days': { type: 'string', default: defaults['past-days'] ?? '0' },
    },
    0,
  );
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max)
      throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  return {
    installations: int('installations', values.installations, 1, 10_000),
    chargers: int('chargers', values.chargers, 0, 10_000),
    deviceTypes: values['device-types'].split(',').map((t) => int('device-types', t.trim(), 0, 100)),
    rate: int('rate', values.rate, 0, 100_000),
    sessions: pattern(values.sessions),
    port: int('port', values.port, 0, 65_535),
    brokerPort: int('broker-port', values['broker-port'], 0, 65_535),
    seed: int('seed', values.seed, 0, 2 ** 31),
    userGroup: values['user-group'],
    pastDays: int('past-days', values['past-days'], 0, 365),
  };
}

function pattern(v: string | undefined): SessionPattern | undefined {
  if (v === undefined) return undefined;
  if (!(SESSION_PATTERNS as readonly string[]).includes(v))
    throw new UsageError(`--sessions must be one of ${SESSION_PATTERNS.join(', ')}`);
  return v as SessionPattern;
}

export async function startSimulation(o: SimulateOptions): Promise<Simulation> {
  const sim = new Simulation({
    fleet: {
      installations: o.installations,
      chargersPerInstallation: o.chargers,
      deviceTypes: o.deviceTypes,
      seed: o.seed,
      pastDays: o.pastDays,
    },
  });
  await sim.start({ rest: o.port, broker: o.brokerPort });
  if (o.userGroup) sim.addUserGroup();
  if (o.sessions) sim.live({ sessions: o.sessions });
  else sim.live({ eventsPerSecond: o.rate });
  return sim;
}

export async function simulateCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: zaptec-sync simulate [options]\n\n${SIMULATE_USAGE}\n`);
    return 0;
  }
  const o = parseSimulateArgs(args);
  const sim = await startSimulation(o);
  const env = sim.env();
  process.stdout.write(
    `# zaptec-sync simulator: ${sim.fleet.installations.size} installations, ${sim.fleet.chargers.size} chargers, ${o.sessions ? `${o.sessions} sessions` : `~${o.rate} observations/s`}\n` +
      '# point the daemon at it with:\n' +
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n') +
      '\n',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await sim.stop();
  return 0;
}
