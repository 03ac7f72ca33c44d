/**
 * CONTRACT §9 against a real PostgreSQL: `migrate` makes and upgrades an account's schema in PostgreSQL's own
 * types, the two documented roles may do what OPERATIONS.md says and nothing else, and accounts' schemas in one
 * database stay apart. Through the built CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { cleanEnv, runCli, tempDir } from '../helpers.js';
import { freshSchema, pgAdmin, pgEnv, pgUrl, urlAs } from '../pg.js';

async function migrate(env: Record<string, string>) {
  return runCli(['migrate'], { env: cleanEnv(env), cwd: tempDir() });
}

/** Runs `sql` as a login role that is a member of `role`; the error code when PostgreSQL refuses it. */
async function asMemberOf(role: string, sql: string, schema: string): Promise<string> {
  const user = `u_${Math.random().toString(36).slice(2, 10)}`;
  await pgAdmin().query(`CREATE ROLE ${user} LOGIN PASSWORD 'pw' IN ROLE ${role}`);
  const client = new pg.Client({ connectionString: urlAs(user, 'pw'), options: `-c search_path=${schema}` });
  await client.connect();
  try {
    await client.query(sql);
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  } finally {
    await client.end();
  }
}

describe.runIf(pgUrl)('migrate against PostgreSQL', () => {
  it('makes the schema in PostgreSQL types, is idempotent, and says which roles may do what', async () => {
    const schema = freshSchema();
    const first = await migrate(pgEnv(schema));
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`\\(schema ${schema}\\): schema version 1 \\(applied 1\\)`));
    expect(first.stdout).toContain(`role ${schema}_read: may read every object`);
    expect(first.stdout).not.toMatch(/:[^@/]*@127/); // no password in what it prints
    const again = await migrate(pgEnv(schema));
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('schema version 1 (up to date)');
    const types = await pgAdmin().query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = $1`,
      [schema],
    );
    const type = (t: string, c: string) =>
      types.rows.find((r) => r.table_name === t && r.column_name === c)?.data_type;
    expect(type('charger_state', 'observed_at')).toBe('timestamp with time zone');
    expect(type('chargers', 'active')).toBe('boolean');
    expect(type('chargers', 'data')).toBe('jsonb');
    expect(type('charging_sessions', 'energy_kwh')).toBe('double precision');
    expect(type('charging_sessions', 'signature_valid')).toBe('boolean');
    // Every public object of CONTRACT §3, §8 and §10.
    for (const object of [
      'installations',
      'chargers',
      'charger_state',
      'charger_state_history',
      'charger_state_current',
      'refresh_requests',
      'commands',
      'sync_status',
      'daemon',
      'daemons',
      'charging_sessions',
      'charging_session_energy',
      'api_budget',
    ])
      expect(
        types.rows.some((r) => r.table_name === object),
        object,
      ).toBe(true);
  });

  it('the read role may only read; the control role may also ask, and change nothing else', async () => {
    const schema = freshSchema();
    expect((await migrate(pgEnv(schema))).code).toBe(0);
    await pgAdmin().query(
      `INSERT INTO ${schema}.charger_state (charger_id, state_id, value, observed_at, received_at, source)
       VALUES ('c1', 710, '3', now(), now(), 'event')`,
    );
    const read = `${schema}_read`;
    const control = `${schema}_control`;
    expect(await asMemberOf(read, 'SELECT * FROM charger_state_current', schema)).toBe('ok');
    expect(await asMemberOf(read, "INSERT INTO refresh_requests (charger) VALUES ('ZAP1')", schema)).toBe(
      '42501',
    );
    expect(await asMemberOf(read, "UPDATE charger_state SET value = '1'", schema)).toBe('42501');
    expect(await asMemberOf(control, "INSERT INTO refresh_requests (charger) VALUES ('ZAP1')", schema)).toBe(
      'ok',
    );
    expect(
      await asMemberOf(control, "INSERT INTO commands (target, action) VALUES ('ZAP1', 'pause')", schema),
    ).toBe('ok');
    expect(await asMemberOf(control, "UPDATE charger_state SET value = '1'", schema)).toBe('42501');
    expect(await asMemberOf(control, 'DELETE FROM charger_state', schema)).toBe('42501');
    expect(await asMemberOf(control, "UPDATE commands SET status = 'done'", schema)).toBe('42501');
    expect(await asMemberOf(control, 'DELETE FROM refresh_requests', schema)).toBe('42501');
    const asked = await pgAdmin().query(`SELECT requested_by FROM ${schema}.commands`);
    expect(asked.rows[0].requested_by).toMatch(/^u_/); // who asked, from the session
  });

  it('two accounts in one database: each schema its own objects and roles', async () => {
    const a = freshSchema('a');
    const b = freshSchema('b');
    expect((await migrate(pgEnv(a))).code).toBe(0);
    expect((await migrate(pgEnv(b))).code).toBe(0);
    await pgAdmin().query(`INSERT INTO ${a}.refresh_requests (charger) VALUES ('ZAP1')`);
    const inB = await pgAdmin().query(`SELECT count(*)::int AS n FROM ${b}.refresh_requests`);
    expect(inB.rows[0].n).toBe(0);
    expect(await asMemberOf(`${b}_read`, `SELECT * FROM ${a}.charger_state`, a)).toBe('42501');
  });

  it('takes the password from ZAPTEC_DB_PASSWORD_FILE; a refused one is exit 78 in one line, never printed', async () => {
    const schema = freshSchema();
    const url = new URL(pgUrl!);
    const password = decodeURIComponent(url.password);
    url.password = '';
    const file = join(tempDir(), 'db-password');
    writeFileSync(file, `${password}\n`);
    const ok = await migrate({ ...pgEnv(schema, url.toString()), ZAPTEC_DB_PASSWORD_FILE: file });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    writeFileSync(file, 'not-the-password\n');
    const refused = await migrate({ ...pgEnv(schema, url.toString()), ZAPTEC_DB_PASSWORD_FILE: file });
    expect(refused.code).toBe(78);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/28P01.*password authentication failed/);
    expect(refused.stderr + refused.stdout).not.toContain(password);
  });

  it('a schema name PostgreSQL would need quoted is a bad setting (78)', async () => {
    const r = await migrate(pgEnv('Zaptec-Account'));
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^zaptec-sync: configuration: ZAPTEC_PG_SCHEMA: /);
  });
});
