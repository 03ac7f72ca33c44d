#!/usr/bin/env node
/**
 * `zaptec-sync <command>`: one executable, one file per command under cli/. Nothing is imported before the
 * Node.js line is checked: on an older Node the dependencies crash (better-sqlite3 with a segmentation fault)
 * or fail to link, and a person should read one line that says what to install instead.
 */

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
  command <charger> pause|resume|restart|deauthorize [--wait <s>]
                                   ask the daemon to send a charger command (ZAPTEC_COMMANDS=on)
  current <installation> <amps>[,<amps>,<amps>] [--wait <s>]
                                   ask the daemon to set an installation's available current
  simulate [options]               a local stand-in for the Zaptec cloud
  demo                             simulate + run, with a live view of the database

options for every command:
  --settings <path>                read settings from this file (the environment wins); --env-file <path>
                                   works too where the file exists (Node itself stops on a missing one)
  -h, --help                       this text`;

/** The Node.js lines zaptec-sync runs on (CONTRACT, README). */
const SUPPORTED_NODE_LINES = [22, 24, 26];
/** The oldest release of the oldest line: better-sqlite3 13 and undici 8 need it. */
const OLDEST_NODE = [22, 19];

type Command = (args: string[], envFile: string | undefined) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./cli/run.js')).runCommand,
  migrate: async () => (await import('./cli/migrate.js')).migrateCommand,
  status: async () => (await import('./cli/status.js')).statusCommand,
  state: async () => (await import('./cli/state.js')).stateCommand,
  refresh: async () => (await import('./cli/refresh.js')).refreshCommand,
  doctor: async () => (await import('./cli/doctor.js')).doctorCommand,
  sessions: async () => (await import('./cli/sessions.js')).sessionsCommand,
  command: async () => (await import('./cli/command.js')).commandCommand,
  current: async () => (await import('./cli/command.js')).currentCommand,
  simulate: async () => (await import('./cli/simulate.js')).simulateCommand,
  demo: async () => (await import('./cli/demo.js')).demoCommand,
};

/** One line naming the supported lines when this Node.js is not one of them, else undefined. */
function unsupportedNode(version: string): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const supported =
    major > OLDEST_NODE[0]! ? major % 2 === 0 : major === OLDEST_NODE[0] && minor >= OLDEST_NODE[1]!;
  if (supported) return undefined;
  return `zaptec-sync: Node.js ${version} is not supported; it runs on Node.js ${SUPPORTED_NODE_LINES.join(', ')} (${OLDEST_NODE.join('.')} or newer); scripts/node in the repository fetches one\n`;
}

/** Takes `--settings <path>`, `--settings=<path>`, `--env-file <path>` or `--env-file=<path>` out of argv. */
function settingsOption(argv: string[]): { argv: string[]; envFile: string | undefined } | string {
  let envFile: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(settings|env-file)(?:=(.*))?$/.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (!value) return `--${m[1]} needs a path`;
    envFile = value;
  }
  return { argv: rest, envFile };
}

async function main(args: string[]): Promise<number> {
  const unsupported = unsupportedNode(process.version);
  if (unsupported) {
    process.stderr.write(unsupported);
    return 78;
  }
  const settings = settingsOption(args);
  if (typeof settings === 'string') {
    process.stderr.write(`zaptec-sync: ${settings}\n`);
    return 2;
  }
  const { argv, envFile } = settings;
  const [name, ...rest] = argv;
  if (name === 'run') catchEarlySignals();
  endQuietlyOnClosedPipe(name === 'run');
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    const { EXIT_CODES_HELP } = await import('./cli/exit-codes.js');
    process.stdout.write(`${USAGE}\n\n${EXIT_CODES_HELP}\n`);
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
  const { UsageError } = await import('./cli/args.js');
  const { ConfigError } = await import('./config.js');
  const { EXIT_CONFIG } = await import('./cli/exit-codes.js');
  try {
    return await (await load())(rest, envFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`zaptec-sync: configuration: ${err.message}\n`);
      return EXIT_CONFIG;
    }
    const { DatabaseSetupError } = await import('./store/database.js');
    if (err instanceof DatabaseSetupError) {
      process.stderr.write(`zaptec-sync ${name}: ${err.message}\n`);
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
 * Output into a closed pipe (`zaptec-sync sessions | head -1`) ends quietly with exit 0 (CONTRACT §7
 * "Exports"), instead of an unhandled EPIPE. The daemon stops as on SIGTERM: cleanly, leaving the database
 * to its readers.
 */
function endQuietlyOnClosedPipe(daemon: boolean): void {
  let ended = false;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (!daemon) process.exit(0);
    if (!ended) process.kill(process.pid, 'SIGTERM');
    ended = true;
  };
  process.stdout.on('error', onError);
  process.stderr.on('error', onError);
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
