#!/usr/bin/env node
/** `zaptec-sync <command>`: one executable, one file per command under cli/. */
import { UsageError } from './cli/args.js';
import { ConfigError, EXIT_CONFIG } from './config.js';

const USAGE = `usage: zaptec-sync <command> [options]

commands:
  run                              the daemon, in the foreground
  migrate                          create or upgrade the database
  status [--json]                  sync health from the database
  state <charger> [--json]         current state of one charger (id or serial)
  refresh [<charger>] [--wait <s>] ask the daemon to look up a charger or refresh the inventory
  doctor                           check configuration, database, credentials and live events
  sessions [--since <date>] [--until <date>] [--charger <id|serial>] [--installation <id>]
           [--format table|csv|json]  completed charging sessions, newest last
  simulate [options]               a local stand-in for the Zaptec cloud
  demo                             simulate + run, with a live view of the database

options for every command:
  --env-file <path>                read settings from this file (the environment wins)
  -h, --help                       this text`;

type Command = (args: string[], envFile: string | undefined) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./cli/run.js')).runCommand,
  migrate: async () => (await import('./cli/migrate.js')).migrateCommand,
  status: async () => (await import('./cli/status.js')).statusCommand,
  state: async () => (await import('./cli/state.js')).stateCommand,
  refresh: async () => (await import('./cli/refresh.js')).refreshCommand,
  doctor: async () => (await import('./cli/doctor.js')).doctorCommand,
  sessions: async () => (await import('./cli/sessions.js')).sessionsCommand,
  simulate: async () => (await import('./cli/simulate.js')).simulateCommand,
  demo: async () => (await import('./cli/demo.js')).demoCommand,
};

async function main(argv: string[]): Promise<number> {
  const envIndex = argv.indexOf('--env-file');
  let envFile: string | undefined;
  if (envIndex >= 0) {
    envFile = argv[envIndex + 1];
    if (!envFile) {
      process.stderr.write('zaptec-sync: --env-file needs a path\n');
      return 2;
    }
    argv = [...argv.slice(0, envIndex), ...argv.slice(envIndex + 2)];
  }
  const eq = argv.findIndex((a) => a.startsWith('--env-file='));
  if (eq >= 0) {
    envFile = argv[eq]!.slice('--env-file='.length);
    argv = [...argv.slice(0, eq), ...argv.slice(eq + 1)];
  }
  const [name, ...rest] = argv;
  if (name === 'run') catchEarlySignals();
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    const { packageVersion } = await import('./config.js');
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`zaptec-sync: unknown command '${name}'\n${USAGE}\n`);
    return 2;
  }
  try {
    return await (await load())(rest, envFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`zaptec-sync: configuration: ${err.message}\n`);
      return EXIT_CONFIG;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`zaptec-sync ${name}: ${err.message}\n`);
      return 2;
    }
    const { describeError } = await import('./log.js');
    process.stderr.write(`zaptec-sync ${name}: ${describeError(err)}\n`);
    return 1;
  }
}

/**
 * SIGTERM at any moment, start-up included, exits 0 (CONTRACT §7): until `run` installs its own handlers,
 * a stop is remembered here and honoured as soon as it starts.
 */
function catchEarlySignals(): void {
  const early = (signal: NodeJS.Signals) => {
    (globalThis as { zaptecEarlyStop?: NodeJS.Signals }).zaptecEarlyStop = signal;
  };
  process.once('SIGTERM', early);
  process.once('SIGINT', early);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`zaptec-sync: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
