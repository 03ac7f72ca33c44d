/**
 * `simulate`: a local stand-in for the Zaptec cloud on loopback, printing the environment that points
 * `run` at it. Runs until SIGTERM/SIGINT, then exits 0.
 */
import { Fleet } from '../simulator/fleet.js';
import { RestSimulator } from '../simulator/rest.js';
import { parseCommandArgs, UsageError } from './args.js';

export interface SimulateOptions {
  installations: number;
  chargers: number;
  deviceTypes: number[];
  port: number;
  seed: number;
}

export function parseSimulateArgs(args: string[]): SimulateOptions {
  const { values } = parseCommandArgs(
    args,
    {
      installations: { type: 'string', default: '3' },
      chargers: { type: 'string', default: '4' },
      'device-types': { type: 'string', default: '4,1' },
      port: { type: 'string', default: '0' },
      seed: { type: 'string', default: '1' },
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
    installations: int('installations', values.installations, 0, 10_000),
    chargers: int('chargers', values.chargers, 0, 10_000),
    deviceTypes: values['device-types'].split(',').map((t) => int('device-types', t.trim(), 0, 100)),
    port: int('port', values.port, 0, 65_535),
    seed: int('seed', values.seed, 0, 2 ** 31),
  };
}

export async function simulateCommand(args: string[]): Promise<number> {
  const o = parseSimulateArgs(args);
  const fleet = new Fleet({
    installations: o.installations,
    chargersPerInstallation: o.chargers,
    deviceTypes: o.deviceTypes,
    seed: o.seed,
  });
  const rest = new RestSimulator({ fleet });
  const url = await rest.start(o.port);
  const user = rest.users[0]!;
  process.stdout.write(
    [
      `# zaptec-sync simulator: ${fleet.installations.size} installations, ${fleet.chargers.size} chargers`,
      `ZAPTEC_API_URL=${url}`,
      `ZAPTEC_USERNAME=${user.username}`,
      `ZAPTEC_PASSWORD=${user.password}`,
      'ZAPTEC_EVENTS=off',
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await rest.stop();
  return 0;
}
