import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, linkSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { attachControl, detachControl } from '../../src/store/control.js';
import {
  closeForReaders,
  latestSchemaVersion,
  migrate,
  openDatabase,
  schemaVersion,
} from '../../src/store/database.js';
import { tempDir } from '../helpers.js';

/** CONTRACT §3, column for column: what consumers rely on. */
const CONTRACT: Record<string, string[]> = {
  installations: ['id', 'name', 'active', 'data', 'first_seen_at', 'last_seen_at', 'removed_at'],
  chargers: [
    'id',
    'installation_id',
    'circuit_id',
    'device_id',
    'name',
    'device_type',
    'active',
    'data',
    'first_seen_at',
    'last_seen_at',
    'removed_at',
  ],
  charger_state: ['charger_id', 'state_id', 'state_name', 'value', 'observed_at', 'received_at', 'source'],
  charger_state_history: ['charger_id', 'state_id', 'value', 'observed_at', 'received_at', 'source'],
  sync_status: ['installation_id', 'events', 'last_event_at', 'last_poll_at', 'detail'],
  daemon: [
    'version',
    'pid',
    'started_at',
    'heartbeat_at',
    'inventory_refreshed_at',
    'next_inventory_at',
    'schema_version',
  ],
  // §8
  charging_sessions: [
    'id',
    'charger_id',
    'installation_id',
    'device_id',
    'started_at',
    'ended_at',
    'energy_kwh',
    'authentication_code',
    'token_name',
    'user_id',
    'stopped_by_rfid',
    'reliable_clock',
    'externally_ended',
    'commit_metadata',
    'ocmf',
    'ocmf_signed',
    'signature_valid',
    'meter_start_kwh',
    'meter_end_kwh',
    'source',
    'first_seen_at',
    'updated_at',
    'data',
    'user_full_name',
    'user_email',
  ],
  charging_session_energy: ['session_id', 'at', 'energy_kwh'],
};

/** CONTRACT §3 and §10: what consumers ask through, in the control database. */
const CONTROL: Record<string, string[]> = {
  refresh_requests: ['id', 'charger', 'requested_at', 'handled_at', 'outcome', 'detail'],
  commands: [
    'id',
    'target',
    'action',
    'value',
    'requested_at',
    'requested_by',
    'status',
    'sent_at',
    'finished_at',
    'outcome',
    'detail',
  ],
};

describe('the migrated schema', () => {
  it('has every public object and column of CONTRACT §3, and the documented primary keys', () => {
    const db = openDatabase(join(tempDir(), 'z.db'), { create: true });
    for (const [table, columns] of Object.entries(CONTRACT)) {
      const have = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string; pk: number }[];
      expect(
        have.map((c) => c.name),
        table,
      ).toEqual(expect.arrayContaining(columns));
    }
    const pk = (t: string) =>
      (db.prepare(`PRAGMA table_info(${t})`).all() as { name: string; pk: number }[])
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name);
    expect(pk('charger_state')).toEqual(['charger_id', 'state_id']);
    expect(pk('installations')).toEqual(['id']);
    expect(pk('chargers')).toEqual(['id']);
    expect(pk('charging_sessions')).toEqual(['id']);
    expect(pk('charging_session_energy')).toEqual(['session_id', 'at']);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(schemaVersion(db)).toBe(latestSchemaVersion());
    db.close();
  });

  it('documents every public column in docs/SCHEMA.md', () => {
    const doc = readFileSync(new URL('../../docs/SCHEMA.md', import.meta.url), 'utf8');
    for (const [table, columns] of Object.entries({ ...CONTRACT, ...CONTROL })) {
      expect(doc).toContain(`\`${table}\``);
      for (const c of columns) expect(doc, `${table}.${c}`).toMatch(new RegExp(`\\|\\s*\`${c}\`\\s*\\|`));
    }
  });

  it('the control database: refresh_requests and commands; a consumer inserts with only what it asks', () => {
    const dir = tempDir();
    const main = openDatabase(join(dir, 'z.db'), { create: true });
    // A request written before schema 7, still open: moved when the control database is first attached.
    main.prepare("INSERT INTO refresh_requests(charger) VALUES ('ZAP000001')").run();
    attachControl(main, join(dir, 'control.db'));
    expect(
      main.prepare("SELECT name FROM main.sqlite_master WHERE name = 'refresh_requests'").get(),
    ).toBeUndefined();
    detachControl(main);
    main.close();
    const db = new Database(join(dir, 'control.db'));
    for (const [table, columns] of Object.entries(CONTROL)) {
      const have = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
      expect(
        have.map((c) => c.name),
        table,
      ).toEqual(expect.arrayContaining(columns));
    }
    expect(db.prepare('SELECT charger FROM refresh_requests').all()).toEqual([{ charger: 'ZAP000001' }]);
    db.prepare("INSERT INTO refresh_requests(charger) VALUES ('ZAP049387')").run();
    const row = db.prepare('SELECT * FROM refresh_requests WHERE id = 2').get() as {
      requested_at: string;
      outcome: null;
    };
    expect(row.requested_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(row.outcome).toBeNull();
    db.prepare("INSERT INTO commands(target, action) VALUES ('ZAP049387', 'pause')").run();
    expect(db.prepare('SELECT status, outcome FROM commands').get()).toEqual({
      status: 'pending',
      outcome: null,
    });
    db.close();
  });

  it('is idempotent and refuses a database newer than the code', () => {
    const path = join(tempDir(), 'z.db');
    const db = openDatabase(path, { create: true });
    expect(migrate(db)).toEqual([]);
    db.pragma(`user_version = ${latestSchemaVersion() + 1}`);
    db.close();
    expect(() => openDatabase(path, { create: true })).toThrow(/newer than this zaptec-sync/);
  });

  it('applies each migration in one transaction: a failing one leaves the previous version', () => {
    const path = join(tempDir(), 'z.db');
    const raw = new Database(path);
    raw.exec('CREATE TABLE installations (x)'); // makes 0001 fail half-way
    expect(() => migrate(raw)).toThrow();
    expect(schemaVersion(raw)).toBe(0);
    expect(raw.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'chargers'").get()).toEqual({
      n: 0,
    });
    raw.close();
  });

  it('after a clean stop, a reader without write permission on the directory can read it', () => {
    const dir = tempDir();
    const path = join(dir, 'z.db');
    const db = openDatabase(path, { create: true });
    db.prepare(
      "INSERT INTO charger_state VALUES ('c', 710, 'ChargerOperationMode', '3', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', 'event')",
    ).run();
    closeForReaders(db);
    chmodSync(path, 0o644);
    chmodSync(dir, 0o555);
    // The reader gets its own copy of better-sqlite3: the checkout may sit where that user cannot look
    // (a clone in a 0700 temporary directory).
    const readerDir = tempDir();
    const script = join(readerDir, 'reader.cjs');
    const bs3 = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'));
    // Its code and its native part: built here (build/), or shipped in the package (prebuilds/, since 13).
    for (const part of ['package.json', 'lib', 'build', 'prebuilds'])
      if (existsSync(join(bs3, part)))
        cpSync(join(bs3, part), join(readerDir, 'bs3', part), { recursive: true });
    const release = join(readerDir, 'bs3', 'build', 'Release', 'better_sqlite3.node');
    const built = existsSync(release) ? release : undefined; // a build of its own is named; prebuilds are found
    writeFileSync(
      script,
      `const D = require('./bs3');
       const db = new D(${JSON.stringify(path)}, { readonly: true, fileMustExist: true${built ? `, nativeBinding: ${JSON.stringify(built)}` : ''} });
       process.stdout.write(String(db.prepare('SELECT value FROM charger_state').get().value));`,
    );
    execFileSync('chmod', ['-R', 'a+rX', readerDir]);
    // As root, permissions would not bite: read as an unprivileged user when we can.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    // Node itself too: a Node fetched by scripts/node sits inside the checkout (a hard link costs nothing).
    const node = join(readerDir, 'node');
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node);
    }
    const r = spawnSync(node, [script], { ...asUser, encoding: 'utf8' });
    chmodSync(dir, 0o755);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('3');
  });
});
