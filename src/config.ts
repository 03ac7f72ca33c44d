/**
 * The only reader of process.env and of credential files (STYLE.md). Every setting of CONTRACT §2 is
 * validated here; a bad one becomes a ConfigError that names the variable, and `run` exits 78 on it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { parseSettingsFile, SettingsFileError } from './settings-file.js';

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export interface Config {
  username: string | undefined;
  /** Never logged: log.ts registers it as a secret as soon as it is read. */
  password: string | undefined;
  apiUrl: string;
  /** The SQLite file; with PostgreSQL, the URL as people may see it (no password). */
  dbPath: string;
  /** ZAPTEC_DB as a PostgreSQL store (CONTRACT §9); undefined for SQLite. */
  postgres: PostgresLocation | undefined;
  /** ZAPTEC_CONTROL_DB: where consumers ask (refresh_requests, commands); `control.db` beside the database. */
  controlDbPath: string;
  /** ZAPTEC_COMMANDS: the daemon carries out `commands` rows; off, each is answered `refused`. */
  commands: boolean;
  installations: string[] | undefined;
  events: boolean;
  servicebusEndpoint: URL | undefined;
  reconcileMinutes: number;
  /** ZAPTEC_RECONCILE_MAX_MINUTES: the longest reconciliation spacing (never below reconcileMinutes). */
  reconcileMaxMinutes: number;
  inventoryCron: string;
  requestsPerMinute: number;
  historyDays: number;
  metrics: { host: string; port: number } | undefined;
  /** ZAPTEC_USER_GROUPS (validated; the subscriptions themselves are the user-groups issue's work). */
  userGroups: string[] | undefined;
  /** ZAPTEC_SESSIONS, ZAPTEC_SESSIONS_DAYS, ZAPTEC_SESSIONS_PERSONAL_DATA (CONTRACT §8). */
  sessions: { enabled: boolean; days: number; personalData: boolean };
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** systemd: stdout is the journal when JOURNAL_STREAM names stdout's device:inode. */
  journalStream: string | undefined;
  notifySocket: string | undefined;
  watchdogUsec: number | undefined;
}

export type Env = Record<string, string | undefined>;

const intIn = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Comma-separated GUIDs (spaces and empty items ignored). */
/** Comma-separated GUIDs, lower case as every id is inside the daemon (normalised here, where they enter). */
function guidList(what: string) {
  return z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(GUID, `must be comma-separated ${what} ids (GUIDs)`)));
}

const fields = {
  ZAPTEC_API_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .transform((u) => u.replace(/\/+$/, '')),
  ZAPTEC_INSTALLATIONS: guidList('installation'),
  ZAPTEC_USER_GROUPS: guidList('user-group'),
  ZAPTEC_SESSIONS: z.enum(['on', 'off'], { error: 'must be on or off' }),
  ZAPTEC_SESSIONS_DAYS: intIn(0, 3650),
  ZAPTEC_SESSIONS_PERSONAL_DATA: z.enum(['on', 'off'], { error: 'must be on or off' }),
  ZAPTEC_EVENTS: z.enum(['on', 'off'], { error: 'must be on or off' }),
  ZAPTEC_COMMANDS: z.enum(['on', 'off'], { error: 'must be on or off' }),
  ZAPTEC_SERVICEBUS_ENDPOINT: z.string().transform((s, ctx) => {
    try {
      const u = new URL(s);
      if (u.protocol === 'amqps:') return u;
      // Plain AMQP skips TLS: only towards this machine (the simulator's broker).
      if (u.protocol === 'amqp:') {
        if (/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(u.hostname)) return u;
        ctx.addIssue({
          code: 'custom',
          message: 'amqp:// (without TLS) is allowed only to a loopback address',
        });
        return z.NEVER;
      }
    } catch {}
    ctx.addIssue({ code: 'custom', message: 'must be amqp://host:port or amqps://host:port' });
    return z.NEVER;
  }),
  ZAPTEC_RECONCILE_MINUTES: intIn(1, 7 * 24 * 60),
  ZAPTEC_RECONCILE_MAX_MINUTES: intIn(1, 7 * 24 * 60),
  ZAPTEC_INVENTORY_CRON: z
    .string()
    .refine((s) => cron.validate(s), 'must be a valid cron expression (e.g. "7 * * * *")'),
  ZAPTEC_REQUESTS_PER_MINUTE: intIn(1, 1000),
  ZAPTEC_HISTORY_DAYS: intIn(0, 36500),
  ZAPTEC_METRICS: z
    .string()
    .regex(/^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:9464')
    .transform((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
    })
    .refine((m) => m.port > 0 && m.port < 65536, 'port must be 1-65535'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  }),
} as const;

function field<K extends keyof typeof fields>(env: Env, name: K): z.output<(typeof fields)[K]> | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const result = fields[name].safeParse(raw);
  if (!result.success) throw new ConfigError(name, result.error.issues[0]?.message ?? 'is invalid');
  return result.data as z.output<(typeof fields)[K]>;
}

function readSecretFile(variable: string, path: string): string {
  try {
    // /dev/stdin is read from the descriptor itself: a file that root redirected into a process running as
    // the service user (OPERATIONS.md's doctor line) is root's, and opening it again by path is refused.
    return readFileSync(path === '/dev/stdin' ? 0 : path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(variable, `cannot read the password file (${code})`);
  }
}

/** A secret from the systemd credential `credential`, else from the file that `fileVariable` names. */
function readSecret(env: Env, credential: string, fileVariable: string): string | undefined {
  const credDir = env.CREDENTIALS_DIRECTORY;
  if (credDir) {
    const path = join(credDir, credential);
    if (existsSync(path)) return readSecretFile('CREDENTIALS_DIRECTORY', path);
  }
  const file = env[fileVariable];
  return file ? readSecretFile(fileVariable, file) : undefined;
}

/** The password: the systemd credential first, then ZAPTEC_PASSWORD_FILE, then ZAPTEC_PASSWORD. */
function readPassword(env: Env): string | undefined {
  return readSecret(env, 'zaptec-password', 'ZAPTEC_PASSWORD_FILE') ?? (env.ZAPTEC_PASSWORD || undefined);
}

/** A PostgreSQL store (CONTRACT §9): where it is, whose password, and which schema holds this account. */
export interface PostgresLocation {
  /** The URL without its password. */
  url: string;
  password: string | undefined;
  /** ZAPTEC_PG_SCHEMA: one schema per Zaptec account. */
  schema: string;
}

/** Names PostgreSQL takes unquoted, and that leave room for `_state`, `_sessions`, `_control` (63 bytes). */
const PG_SCHEMA = /^[a-z_][a-z0-9_]{0,47}$/;

/**
 * A `postgresql://` or `postgres://` ZAPTEC_DB, else undefined (a SQLite file). The password: the systemd
 * credential `zaptec-db-password`, then ZAPTEC_DB_PASSWORD_FILE, then the URL's own.
 */
export function postgresLocation(env: Env): PostgresLocation | undefined {
  const raw = env.ZAPTEC_DB?.trim();
  if (!raw || !/^postgres(ql)?:\/\//i.test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      'ZAPTEC_DB',
      'is not a valid PostgreSQL URL (postgresql://user@host:5432/database)',
    );
  }
  const fromUrl = url.password ? decodeURIComponent(url.password) : undefined;
  url.password = '';
  const schema = env.ZAPTEC_PG_SCHEMA?.trim() || 'zaptec';
  if (!PG_SCHEMA.test(schema))
    throw new ConfigError(
      'ZAPTEC_PG_SCHEMA',
      'must be a lower-case name of letters, digits and _ (at most 48), starting with a letter or _',
    );
  return {
    url: url.toString(),
    password: readSecret(env, 'zaptec-db-password', 'ZAPTEC_DB_PASSWORD_FILE') ?? fromUrl,
    schema,
  };
}

/** ZAPTEC_DB, else `$STATE_DIRECTORY/zaptec.db` under systemd, else ./zaptec.db. */
export function databasePath(env: Env): string {
  if (postgresLocation(env))
    throw new ConfigError(
      'ZAPTEC_DB',
      'is a PostgreSQL URL: this version runs migrate, status, state and sessions against PostgreSQL; this command needs a SQLite file still',
    );
  const stateDir = env.STATE_DIRECTORY?.split(':')[0];
  return env.ZAPTEC_DB || (stateDir ? join(stateDir, 'zaptec.db') : './zaptec.db');
}

/** ZAPTEC_CONTROL_DB, else `control.db` in the main database's directory. */
export function controlDatabasePath(env: Env): string {
  return env.ZAPTEC_CONTROL_DB || join(dirname(databasePath(env)), 'control.db');
}

export interface LoadOptions {
  /** `run` and `doctor` need credentials; the database commands do not. */
  requireCredentials?: boolean;
}

export function parseConfig(env: Env, options: LoadOptions = {}): Config {
  const username = env.ZAPTEC_USERNAME?.trim() || undefined;
  const password = readPassword(env);
  if (options.requireCredentials) {
    if (!username) throw new ConfigError('ZAPTEC_USERNAME', 'is required (the Zaptec Portal user)');
    if (!password)
      throw new ConfigError(
        'ZAPTEC_PASSWORD',
        'is required (or ZAPTEC_PASSWORD_FILE, or the systemd credential zaptec-password)',
      );
  }
  const installations = field(env, 'ZAPTEC_INSTALLATIONS');
  const watchdog = env.WATCHDOG_USEC ? Number(env.WATCHDOG_USEC) : undefined;
  const postgres = postgresLocation(env);
  return {
    username,
    password,
    apiUrl: field(env, 'ZAPTEC_API_URL') ?? 'https://api.zaptec.com',
    dbPath: postgres ? `${postgres.url} (schema ${postgres.schema})` : databasePath(env),
    postgres,
    controlDbPath: postgres ? '' : controlDatabasePath(env),
    commands: (field(env, 'ZAPTEC_COMMANDS') ?? 'off') === 'on',
    installations: nonEmpty(installations),
    events: (field(env, 'ZAPTEC_EVENTS') ?? 'on') === 'on',
    servicebusEndpoint: field(env, 'ZAPTEC_SERVICEBUS_ENDPOINT'),
    ...reconcileSpacing(env),
    inventoryCron: field(env, 'ZAPTEC_INVENTORY_CRON') ?? '7 * * * *',
    requestsPerMinute: field(env, 'ZAPTEC_REQUESTS_PER_MINUTE') ?? 600,
    historyDays: field(env, 'ZAPTEC_HISTORY_DAYS') ?? 7,
    metrics: field(env, 'ZAPTEC_METRICS'),
    userGroups: nonEmpty(field(env, 'ZAPTEC_USER_GROUPS')),
    sessions: {
      enabled: (field(env, 'ZAPTEC_SESSIONS') ?? 'on') === 'on',
      days: field(env, 'ZAPTEC_SESSIONS_DAYS') ?? 30,
      personalData: field(env, 'ZAPTEC_SESSIONS_PERSONAL_DATA') === 'on',
    },
    logLevel: field(env, 'LOG_LEVEL') ?? 'info',
    journalStream: env.JOURNAL_STREAM || undefined,
    notifySocket: env.NOTIFY_SOCKET || undefined,
    watchdogUsec: watchdog && Number.isFinite(watchdog) && watchdog > 0 ? watchdog : undefined,
  };
}

/** The shortest and the longest reconciliation spacing; a longest below the shortest is a mistake, said so. */
function reconcileSpacing(env: Env): { reconcileMinutes: number; reconcileMaxMinutes: number } {
  const reconcileMinutes = field(env, 'ZAPTEC_RECONCILE_MINUTES') ?? 60;
  const max = field(env, 'ZAPTEC_RECONCILE_MAX_MINUTES');
  if (max !== undefined && max < reconcileMinutes)
    throw new ConfigError(
      'ZAPTEC_RECONCILE_MAX_MINUTES',
      `must be at least ZAPTEC_RECONCILE_MINUTES (${reconcileMinutes}), the shortest spacing`,
    );
  return { reconcileMinutes, reconcileMaxMinutes: max ?? Math.max(360, reconcileMinutes) };
}

function nonEmpty<T>(list: T[] | undefined): T[] | undefined {
  return list && list.length > 0 ? list : undefined;
}

/**
 * The process environment, with a settings file underneath it: `--settings <path>` (or `--env-file <path>`)
 * when given, else `.env` in the working directory when present. Variables already set in the environment
 * win, as with systemd. A file that cannot be read or holds a line that is not a setting is a ConfigError
 * naming the file and the line.
 */
export function environment(envFile?: string): Env {
  const base: Env = { ...process.env };
  const path = envFile ?? (existsSync('.env') ? '.env' : undefined);
  if (!path) return base;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, `cannot read the settings file (${(err as NodeJS.ErrnoException).code})`);
  }
  let fromFile: Env;
  try {
    fromFile = parseSettingsFile(text, path);
  } catch (err) {
    if (err instanceof SettingsFileError) throw new ConfigError(path, `line ${err.line}: ${err.problem}`);
    throw err;
  }
  for (const [k, v] of Object.entries(fromFile)) if (base[k] === undefined) base[k] = v;
  return base;
}

/** Only the process environment: what `demo` runs with, so that no `.env` of a real setup reaches it. */
export function processEnvironment(): Env {
  return { ...process.env };
}

/**
 * Every ZAPTEC_* name something reads (CONTRACT §2, and scripts/node's ZAPTEC_NODE). Another one is almost
 * always a misspelling that silently leaves a default in force: `run` warns and `doctor` reports it.
 */
export const KNOWN_VARIABLES = [
  'ZAPTEC_USERNAME',
  'ZAPTEC_PASSWORD',
  'ZAPTEC_PASSWORD_FILE',
  'ZAPTEC_API_URL',
  'ZAPTEC_DB',
  'ZAPTEC_INSTALLATIONS',
  'ZAPTEC_EVENTS',
  'ZAPTEC_SERVICEBUS_ENDPOINT',
  'ZAPTEC_RECONCILE_MINUTES',
  'ZAPTEC_RECONCILE_MAX_MINUTES',
  'ZAPTEC_INVENTORY_CRON',
  'ZAPTEC_REQUESTS_PER_MINUTE',
  'ZAPTEC_HISTORY_DAYS',
  'ZAPTEC_METRICS',
  'ZAPTEC_USER_GROUPS',
  'ZAPTEC_SESSIONS',
  'ZAPTEC_SESSIONS_DAYS',
  'ZAPTEC_SESSIONS_PERSONAL_DATA',
  'ZAPTEC_CONTROL_DB',
  'ZAPTEC_COMMANDS',
  'ZAPTEC_DB_PASSWORD_FILE',
  'ZAPTEC_PG_SCHEMA',
  'ZAPTEC_NODE',
] as const;

/** ZAPTEC_* names in the environment that nothing reads, each with the known name closest to it. */
export function unknownVariables(env: Env): { name: string; closest: string }[] {
  const known: readonly string[] = KNOWN_VARIABLES;
  return Object.keys(env)
    .filter((name) => name.startsWith('ZAPTEC_') && !known.includes(name))
    .sort()
    .map((name) => ({
      name,
      closest: known.reduce((best, k) => (editDistance(name, k) < editDistance(name, best) ? k : best)),
    }));
}

/** Levenshtein distance, for the closest real name of a misspelt one. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The version of this package, for the User-Agent and the daemon row. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
