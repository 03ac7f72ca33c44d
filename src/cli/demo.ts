/**
 * `demo`: the simulator and the daemon together, with a live view of what lands in SQLite
 * (`./zaptec-demo.db` unless ZAPTEC_DB is set). Ctrl-C stops both and exits 0, leaving a database any
 * consumer can open.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { processEnvironment } from '../config.js';
import { insertCommand, readCommand } from '../store/commands.js';
import { keptForRealAccount } from '../store/database.js';
import { sqliteSql } from '../store/reader.js';
import { delay } from '../time.js';
import { changedLines, progressLine, readView, screen, summaryLine, type ViewData } from './demo-view.js';
import { EXIT_CONFIG } from './exit-codes.js';
import { parseSimulateArgs, SIMULATE_USAGE, startSimulation } from './simulate.js';

const REFRESH_MS = 1_000;

export async function demoCommand(args: string[], envFile: string | undefined): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: zaptec-sync demo [options]\n\n${SIMULATE_USAGE}\n`);
    return 0;
  }
  const options = parseSimulateArgs(args, {
    installations: '2',
    chargers: '4',
    rate: '6',
    // A few days of charge history, so that the first start's backfill brings sessions with their energy per
    // interval (charging_session_energy) for consumers to try their queries on.
    'past-days': '3',
  });
  // Never a real setup's settings: no settings file (not even ./.env), and of the environment only where the
  // demo's database goes and how much it logs. Every other ZAPTEC_* setting stays out of the daemon's.
  const env = processEnvironment();
  if (envFile !== undefined)
    process.stderr.write(
      'zaptec-sync demo: the settings file is not read: the demo never uses a real setup\n',
    );
  const dbPath = env.ZAPTEC_DB || './zaptec-demo.db';
  if (keptForRealAccount(dbPath)) {
    process.stderr.write(
      `zaptec-sync demo: ${dbPath} holds a real account's data; the demo will not write simulated chargers into it (unset ZAPTEC_DB, or name another file)\n`,
    );
    return EXIT_CONFIG;
  }
  const controlPath = env.ZAPTEC_CONTROL_DB || `${dbPath.replace(/\.db$/, '')}-control.db`;
  const sim = await startSimulation(options);
  const childEnv = Object.fromEntries(
    Object.entries(env).filter(([k]) => !k.startsWith('ZAPTEC_') && k !== 'CREDENTIALS_DIRECTORY'),
  );
  const daemon = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('../cli.js', import.meta.url)),
      'run',
      // An empty settings file: the daemon reads no ./.env either.
      '--settings',
      '/dev/null',
    ],
    {
      env: {
        ...childEnv,
        ...sim.env(),
        ZAPTEC_DB: dbPath,
        ZAPTEC_CONTROL_DB: controlPath,
        ZAPTEC_COMMANDS: 'on',
        ZAPTEC_EVENTS: 'on',
        LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: string[] = [];
  const keep = (d: Buffer) => {
    for (const line of String(d).split('\n').filter(Boolean)) logs.push(line.replace(/^<\d>/, ''));
    logs.splice(0, Math.max(0, logs.length - 5));
  };
  daemon.stdout.on('data', keep);
  daemon.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
  let stopping = false;
  let db: Database.Database | undefined;
  let control: Database.Database | undefined;
  const operator = new DemoOperator();
  // The view's connection closes at once: the daemon, stopping on the same Ctrl-C, can only leave the file
  // in rollback-journal mode (no -wal/-shm) when no other connection has it open (CONTRACT §7).
  const stop = () => {
    stopping = true;
    db?.close();
    db = undefined;
    control?.close();
    control = undefined;
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  daemon.on('exit', stop);

  const tty = process.stdout.isTTY === true;
  const seen = new Map<string, string>();
  let lastSummary = 0;
  while (!stopping) {
    await delay(REFRESH_MS);
    if (!db && existsSync(dbPath)) {
      try {
        db = new Database(dbPath, { readonly: true, fileMustExist: true });
        db.pragma('busy_timeout = 2000');
      } catch {
        db = undefined;
      }
    }
    if (db && !control && existsSync(controlPath)) {
      try {
        control = new Database(controlPath, { fileMustExist: true });
        control.pragma('busy_timeout = 2000');
      } catch {
        control = undefined;
      }
    }
    if (!db || stopping) continue;
    let view: ReturnType<typeof readView>;
    try {
      view = readView(db, control);
      if (control) await operator.step(view, control, Date.now());
    } catch {
      continue; // the schema is being created
    }
    if (tty) {
      process.stdout.write(
        `\x1b[H\x1b[2J${screen(view, dbPath, Date.now())}\n${logs.length ? `\n${logs.join('\n')}\n` : ''}`,
      );
    } else {
      for (const line of changedLines(seen, view, Date.now())) process.stdout.write(`${line}\n`);
      if (Date.now() - lastSummary >= 10_000) {
        lastSummary = Date.now();
        process.stdout.write(`${progressLine(view)}\n${summaryLine(view)}\n`);
      }
    }
  }
  db?.close();
  control?.close();
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  const code = await exited;
  await sim.stop();
  process.stdout.write(
    `\nstopped. The database is ${dbPath}: try  sqlite3 -readonly ${dbPath} "SELECT * FROM charger_state_current LIMIT 5"\n`,
  );
  if (code !== 0) {
    process.stderr.write(`the daemon exited with ${code}:\n${logs.join('\n')}\n`);
    return 1;
  }
  return 0;
}

/** How long the demo's charger stays paused once the pause is confirmed. */
const PAUSED_FOR_MS = 45_000;

/**
 * The demo's energy manager: it pauses the first charger it sees charging and resumes it a little later, as a
 * consumer asks the daemon (CONTRACT §10): a row in `commands`, and the outcome in the view.
 */
class DemoOperator {
  #pause: { id: number; serial: string } | undefined;
  #confirmedAt: number | undefined;
  #resumed = false;

  async step(view: ViewData, control: Database.Database, now: number): Promise<void> {
    const asking = sqliteSql(control);
    if (!this.#pause) {
      const serial = view.chargers.find((c) => c.mode === '3' && c.device_id)?.device_id;
      if (!serial) return;
      const id = await insertCommand(asking, {
        target: serial,
        action: 'pause',
        value: null,
        requestedBy: 'demo',
      });
      this.#pause = { id, serial };
      return;
    }
    if (this.#resumed) return;
    if (this.#confirmedAt === undefined) {
      const r = await readCommand(asking, this.#pause.id);
      if (r?.status === 'done') this.#confirmedAt = now;
      return;
    }
    if (now - this.#confirmedAt < PAUSED_FOR_MS) return;
    await insertCommand(asking, {
      target: this.#pause.serial,
      action: 'resume',
      value: null,
      requestedBy: 'demo',
    });
    this.#resumed = true;
  }
}
