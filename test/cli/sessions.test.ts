/** CONTRACT §1 `sessions`: the built CLI over a real database — formats, filters and exit codes. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { closeForReaders, openDatabase } from '../../src/store/database.js';
import { type HistoryItem, SessionStore } from '../../src/store/sessions.js';
import { CLI, cleanEnv, runCli, tempDir } from '../helpers.js';

const INST = 'aaaaaaaa-0000-4000-8000-000000000001';
const OTHER = 'bbbbbbbb-0000-4000-8000-000000000002';
const C1 = 'c1c1c1c1-0000-4000-8000-000000000001';
const C2 = 'c2c2c2c2-0000-4000-8000-000000000002';

function database(): string {
  const path = join(tempDir(), 'z.db');
  const db = openDatabase(path, { create: true });
  const now = '2026-11-30T12:00:00.000Z';
  const insert = db.prepare(
    `INSERT INTO chargers (id, installation_id, device_id, name, device_type, active, data, first_seen_at, last_seen_at)
     VALUES (?, ?, ?, ?, 1, 1, '{}', ?, ?)`,
  );
  insert.run(C1, INST, 'ZPR000001', 'Bay 1', now, now);
  insert.run(C2, OTHER, 'ZAP000002', 'Bay 2', now, now);
  db.prepare(
    "INSERT INTO installations (id, name, active, data, first_seen_at, last_seen_at) VALUES (?, 'A', 1, '{}', ?, ?)",
  ).run(INST, now, now);
  const sessions = new SessionStore(db, {
    personalData: false,
    log: createLogger({ level: 'silent' }),
    now: () => Date.parse(now),
  });
  const item = (id: string, charger: string, end: string, kwh: number, token: string): HistoryItem => ({
    Id: id,
    ChargerId: charger,
    DeviceId: charger === C1 ? 'ZPR000001' : 'ZAP000002',
    StartDateTime: `${end.slice(0, 11)}00:00:00`,
    EndDateTime: end,
    Energy: kwh,
    CommitMetadata: 5,
    TokenName: token,
    SignedSession: 'OCMF|{"FV":"1.0","GI":"ZAPTEC GO","RD":[{"TX":"B","RV":1,"RU":"kWh"},{"TX":"E","RV":2}]}',
  });
  sessions.history(
    item('00000000-0000-4000-8000-00000000000a', C1, '2026-10-31T23:59:59.999', 10.5, 'Blue, "tag"'),
    INST,
  );
  sessions.history(
    item('00000000-0000-4000-8000-00000000000b', C1, '2026-11-01T00:00:00', 1.25, 'Red'),
    INST,
  );
  sessions.history(
    item('00000000-0000-4000-8000-00000000000c', C2, '2026-11-15T08:30:00', 2, 'Green'),
    OTHER,
  );
  sessions.history(item('00000000-0000-4000-8000-00000000000d', C1, '2026-12-01T00:00:00', 3, 'Red'), INST);
  closeForReaders(db);
  return path;
}

/** A new database with nothing in it, and a session store to fill it. */
function emptyDatabase() {
  const path = join(tempDir(), 'z.db');
  const db = openDatabase(path, { create: true });
  const sessions = new SessionStore(db, {
    personalData: false,
    log: createLogger({ level: 'silent' }),
    now: () => Date.parse('2026-11-30T12:00:00Z'),
  });
  return { path, db, sessions };
}

const cli = (path: string, ...args: string[]) =>
  runCli(['sessions', ...args], { env: cleanEnv({ ZAPTEC_DB: path }) });

describe('zaptec-sync sessions', () => {
  it('lists every session newest last, as a table for people', async () => {
    const r = await cli(database());
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ended \(UTC\)\s+charger\s+kWh/);
    expect(lines.slice(1, 5).map((l) => l.slice(0, 19))).toEqual([
      '2026-10-31 23:59:59',
      '2026-11-01 00:00:00',
      '2026-11-15 08:30:00',
      '2026-12-01 00:00:00',
    ]);
    expect(lines.at(-1)).toBe('4 sessions, 16.750 kWh');
  });

  it('a month for billing as CSV: --since inclusive, --until exclusive, a header line, RFC 4180 quoting', async () => {
    const r = await cli(database(), '--since', '2026-11-01', '--until', '2026-12-01', '--format', 'csv');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\r\n');
    expect(lines[0]).toBe(
      'id,charger_id,installation_id,device_id,started_at,ended_at,energy_kwh,authentication_code,token_name,user_id,stopped_by_rfid,reliable_clock,externally_ended,commit_metadata,ocmf,ocmf_signed,signature_valid,meter_start_kwh,meter_end_kwh,source,first_seen_at,updated_at,user_full_name,user_email',
    );
    expect(lines.slice(1, -1).map((l) => l.split(',')[0])).toEqual([
      '00000000-0000-4000-8000-00000000000b',
      '00000000-0000-4000-8000-00000000000c',
    ]);
    expect(lines[1]).toContain('"OCMF|{""FV"":""1.0""'); // quotes doubled inside a quoted field
    expect(lines.at(-1)).toBe('');
  });

  it('filters by charger (id or serial) and installation; JSON carries the columns and data as an object', async () => {
    const path = database();
    const bySerial = JSON.parse((await cli(path, '--charger', 'zpr000001', '--format', 'json')).stdout) as {
      id: string;
      data: { TokenName: string };
      token_name: string;
    }[];
    expect(bySerial.map((s) => s.id.slice(-1))).toEqual(['a', 'b', 'd']);
    expect(bySerial[0]).toMatchObject({ token_name: 'Blue, "tag"', data: { TokenName: 'Blue, "tag"' } });
    const byInstallation = JSON.parse(
      (await cli(path, '--installation', OTHER.toUpperCase(), '--format', 'json')).stdout,
    );
    expect(byInstallation.map((s: { id: string }) => s.id.slice(-1))).toEqual(['c']);
    const since = JSON.parse((await cli(path, '--since', '2026-11-15T08:30:00Z', '--format', 'json')).stdout);
    expect(since).toHaveLength(2);
  });

  it('exits 4 for an unknown charger or installation, 2 without a database, 2 for a date it cannot read', async () => {
    const path = database();
    expect((await cli(path, '--charger', 'ZAP999999')).code).toBe(4);
    expect((await cli(path, '--installation', 'dddddddd-0000-4000-8000-000000000009')).code).toBe(4);
    const none = await cli(join(tempDir(), 'missing.db'));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no database');
    const bad = await cli(path, '--since', 'last month');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since');
    const reversed = await cli(path, '--since', '2026-12-01', '--until', '2026-11-01');
    expect(reversed.code).toBe(2);
    expect(reversed.stderr).toMatch(/--since .* before --until/);
  });

  it('CSV never hands a spreadsheet a formula: text that starts like one gets a leading quote, numbers stay numbers', async () => {
    const { path, db, sessions } = emptyDatabase();
    const tokens = [
      '=HYPERLINK("http://x","y")',
      '+31 600 000 000',
      '@SUM(A1:A9)',
      '-2+3',
      '\tTab',
      '\rCR',
      'Plain',
    ];
    for (const [i, token] of tokens.entries()) {
      sessions.history(
        {
          Id: `00000000-0000-4000-8000-00000000001${i}`,
          ChargerId: C1,
          StartDateTime: '2026-11-01T00:00:00',
          EndDateTime: `2026-11-01T0${i}:00:00`,
          Energy: -0.5,
          TokenName: token,
        },
        INST,
      );
    }
    closeForReaders(db);
    const r = await cli(path, '--format', 'csv');
    expect(r.code).toBe(0);
    const header = r.stdout.split('\r\n')[0]!.split(',');
    const tokenAt = header.indexOf('token_name');
    const energyAt = header.indexOf('energy_kwh');
    const rows = r.stdout.split('\r\n').slice(1, -1);
    const cells = rows.map((line) => line.split(','));
    expect(cells.map((c) => c[energyAt])).toEqual(tokens.map(() => '-0.5'));
    expect(rows[0]).toContain(`"'=HYPERLINK(""http://x"",""y"")"`);
    expect(cells.slice(1, 4).map((c) => c[tokenAt])).toEqual(["'+31 600 000 000", "'@SUM(A1:A9)", "'-2+3"]);
    expect(cells[4]![tokenAt]).toBe("'\tTab");
    expect(rows[5]).toContain(`"'\rCR"`);
    expect(cells[6]![tokenAt]).toBe('Plain');
  });

  it('output into a closed pipe ends quietly with exit 0', async () => {
    const { path, db, sessions } = emptyDatabase();
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) {
        const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
        sessions.history({ Id: id, ChargerId: C1, EndDateTime: '2026-11-01T00:00:00', Energy: i }, INST);
      }
    })();
    closeForReaders(db);
    for (const format of ['json', 'csv', 'table']) {
      const r = await runShell(`"${process.execPath}" "${CLI}" sessions --format ${format} | head -1`, path);
      expect(r.stderr).toBe('');
      expect(r.codes).toEqual(['0', '0']);
    }
  });
});

/** A shell pipeline; `codes` are the exit statuses of its commands (bash's PIPESTATUS). */
function runShell(pipeline: string, db: string): Promise<{ codes: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${pipeline} > /dev/null; echo "\${PIPESTATUS[@]}"`], {
      env: cleanEnv({ ZAPTEC_DB: db }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', () => resolve({ codes: stdout.trim().split(' '), stderr }));
  });
}
