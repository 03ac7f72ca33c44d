/**
 * pino JSON lines on stdout. Secrets are scrubbed from every serialized line (not only from known keys),
 * so a password inside an error message or a URL cannot leak; under journald each line carries a
 * syslog `<N>` priority so `journalctl -p warning` works.
 */
import { fstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

const secrets = new Set<string>();

/** Forms in which a secret could appear inside a JSON log line. */
function secretForms(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const forms = new Set([secret, json, encodeURIComponent(secret), JSON.stringify(json).slice(1, -1)]);
  return [...forms].filter((f) => f.length >= 4);
}

/** From now on, this value never appears in a log line. Values shorter than 4 characters are ignored. */
export function registerSecret(secret: string | undefined): void {
  if (!secret || secret.length < 4) return;
  for (const form of secretForms(secret)) secrets.add(form);
}

export function scrub(line: string): string {
  let out = line;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('[redacted]');
  return out;
}

const REDACT_PATHS = [
  'password',
  'Password',
  'token',
  'access_token',
  'accessToken',
  'authorization',
  'Authorization',
  'headers.authorization',
  'headers.Authorization',
  'connectionString',
  'sharedAccessKey',
  'SharedAccessKey',
  '*.password',
  '*.Password',
  '*.access_token',
  '*.authorization',
  '*.connectionString',
  '*.SharedAccessKey',
];

/** pino level → syslog priority (sd-daemon(3)). */
function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

/** True when JOURNAL_STREAM ("dev:inode") names the file behind fd 1. */
export function stdoutIsJournal(journalStream: string | undefined): boolean {
  if (!journalStream) return false;
  try {
    const st = fstatSync(1);
    const [dev, ino] = journalStream.split(':');
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

export interface LogOptions {
  level?: string;
  journal?: boolean;
  /** Where lines go; stdout by default. Tests pass a collector. */
  destination?: DestinationStream;
  /**
   * Readable lines for a person instead of JSON (pino-pretty). By default: when stdout is a terminal and not
   * the journal; JSON under systemd and in pipes, where programs read the lines.
   */
  pretty?: boolean;
}

/** pino-pretty, loaded only for a terminal (a daemon under systemd never needs it in memory). */
function prettyStream(): DestinationStream {
  const require = createRequire(import.meta.url);
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => DestinationStream;
  return pretty({
    destination: 1,
    sync: true,
    colorize: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
}

export function createLogger(options: LogOptions = {}): Logger {
  const journal = options.journal ?? false;
  const pretty = options.pretty ?? (!options.destination && !journal && process.stdout.isTTY === true);
  const dest = options.destination ?? (pretty ? prettyStream() : pino.destination({ dest: 1, sync: true }));
  return pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      hooks: {
        streamWrite(line: string): string {
          const clean = scrub(line);
          if (!journal) return clean;
          const level = /"level":(\d+)/.exec(clean)?.[1];
          return `<${syslogPriority(Number(level ?? 30))}>${clean}`;
        },
      },
    },
    dest,
  );
}

/** A short, secret-free description of an error for one log line or a `detail` column. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return scrub(
      typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message,
    );
  }
  return scrub(String(err));
}
