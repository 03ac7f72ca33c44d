/**
 * `doctor`: each check in plain words, with the fix where one is known. Exit 0 when all is well, 1 when
 * something is wrong. It uses the daemon's own budget (the same database), so it cannot push the account
 * over Zaptec's limits either.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type Config,
  ConfigError,
  environment,
  type PostgresLocation,
  packageVersion,
  parseConfig,
  unknownVariables,
} from '../config.js';
import { CredentialsError, HttpStatusError, NetworkError, RateLimitedError } from '../http/errors.js';
import { createLogger, describeError, registerSecret } from '../log.js';
import { type Db, latestSchemaVersion, openDatabase, schemaVersion } from '../store/database.js';
import { InventoryStore } from '../store/inventory.js';
import { latestPgSchemaVersion, pgSchemaVersion } from '../store/postgres/migrate.js';
import { describeLocation, openPool, storeFault } from '../store/postgres/pool.js';
import { SqliteBudgetLedger } from '../store/sqlite/budget-ledger.js';
import { systemClock } from '../time.js';
import { createZaptecClient } from '../zaptec/client.js';
import type { ConnectionDetails } from '../zaptec/schemas.js';
import { serviceBusClient } from '../zaptec/servicebus.js';
import { parseCommandArgs } from './args.js';

/** How long the Service Bus check may take per subscription; no retries (doctor says what it found). */
const SERVICE_BUS_CHECK_MS = 15_000;

function where(d: ConnectionDetails, config: Config): string {
  return config.servicebusEndpoint?.host ?? d.Host;
}

/**
 * Connects to the subscription as the daemon would and opens a link to it, receiving nothing: a peek of one
 * message, which locks and settles nothing (the message stays for the daemon). Undefined when it answers,
 * else what is wrong and how to fix it.
 */
async function checkSubscription(
  d: ConnectionDetails,
  endpoint: URL | undefined,
): Promise<[string, string] | undefined> {
  const client = serviceBusClient(d, endpoint, { maxRetries: 0, timeoutInMs: SERVICE_BUS_CHECK_MS });
  try {
    const receiver = client.createReceiver(d.Topic, d.Subscription);
    await receiver.peekMessages(1, { abortSignal: AbortSignal.timeout(SERVICE_BUS_CHECK_MS) });
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'UnauthorizedAccess')
      return [
        'the Service Bus refused the subscription’s key',
        'run doctor again (the key may just have rotated)',
      ];
    if (code === 'MessagingEntityNotFound')
      return [
        `the Service Bus has no subscription ${d.Subscription} on topic ${d.Topic}`,
        'enable "Message subscription" again in the installation’s settings in the Zaptec Portal',
      ];
    return [
      `cannot reach the Service Bus at ${endpoint?.host ?? d.Host} (${describeError(err)})`,
      'check that this machine may connect to it on port 5671 (AMQP over TLS), and any proxy or firewall',
    ];
  } finally {
    await client.close().catch(() => {});
  }
}

/** Clocks further apart than this make Zaptec's zone-less timestamps and rate-limit resets misleading. */
const MAX_SKEW_MS = 30_000;

class Report {
  failures = 0;
  ok(what: string, text: string): void {
    process.stdout.write(`ok    ${what}: ${text}\n`);
  }
  bad(what: string, text: string, fix?: string): void {
    this.failures++;
    process.stdout.write(`FAIL  ${what}: ${text}${fix ? ` — ${fix}` : ''}\n`);
  }
}

/**
 * PostgreSQL (CONTRACT §9): the server answers with this login, the schema's version, whether `run` may
 * create or write it, and which instance is active now. The daemon's budget record is in the schema, but
 * doctor's few calls are not added to it (its ledger is its own, in memory).
 */
async function checkPostgres(location: PostgresLocation, r: Report): Promise<void> {
  const pool = openPool(location, { max: 1, name: 'zaptec-sync doctor' });
  const what = describeLocation(location);
  try {
    const version = await pgSchemaVersion(pool, location.schema);
    const latest = latestPgSchemaVersion();
    // Flags come back as 0/1 from this pool (pool.ts).
    const can = async (sql: string, ...params: unknown[]) =>
      Boolean((await pool.query<{ ok: number }>(`SELECT ${sql} AS ok`, params)).rows[0]?.ok);
    if (version > latest) {
      r.bad(
        'database',
        `${what} has schema version ${version}, newer than this zaptec-sync (${latest})`,
        'upgrade zaptec-sync',
      );
      return;
    }
    if (version === 0) {
      if (await can("has_database_privilege(current_user, current_database(), 'CREATE')"))
        r.ok('database', `${what} answers; run (or migrate) will create the schema`);
      else
        r.bad(
          'database',
          `${what} answers, but this user may not create the schema ${location.schema}`,
          'run migrate as its owner, or grant CREATE on the database',
        );
      return;
    }
    if (
      !(await can(
        "has_table_privilege(current_user, $1, 'INSERT,UPDATE,DELETE')",
        `${location.schema}.charger_state`,
      ))
    ) {
      r.bad(
        'database',
        `${what} answers, but this user may not write the schema`,
        'run the daemon as the schema’s owner (OPERATIONS.md, PostgreSQL)',
      );
      return;
    }
    const active = await pool.query<{ host: string; pid: number }>(
      `SELECT host, pid FROM ${location.schema}.daemons WHERE role = 'active' AND heartbeat_at > now() - interval '30 seconds'`,
    );
    const who = active.rows[0]
      ? `; active now: pid ${active.rows[0].pid} on ${active.rows[0].host} (a run here would be a standby)`
      : '; no instance is active now';
    r.ok(
      'database',
      `${what} is writable${version < latest ? `; run will upgrade its schema ${version} to ${latest}` : ''}${who}`,
    );
  } catch (err) {
    r.bad(
      'database',
      describeError(storeFault(location, err)),
      'check ZAPTEC_DB, the password and that the server accepts this host',
    );
  } finally {
    await pool.end().catch(() => {});
  }
}

function checkDatabase(config: Config, r: Report): Db | undefined {
  if (config.postgres) return undefined;
  const path = config.dbPath;
  try {
    if (!existsSync(path)) {
      accessSync(dirname(path), constants.W_OK);
      r.ok('database', `${path} does not exist yet; the daemon will create it (the directory is writable)`);
      return undefined;
    }
    // As a consumer: the journal mode stays as found (a cleanly stopped database stays in rollback-journal mode
    // for read-only readers), and the schema is the daemon's to upgrade.
    const db = openDatabase(path, { consumer: true });
    const version = schemaVersion(db);
    if (version > latestSchemaVersion()) {
      db.close();
      r.bad(
        'database',
        `${path} has schema version ${version}, newer than this zaptec-sync (${latestSchemaVersion()})`,
        'upgrade zaptec-sync',
      );
      return undefined;
    }
    db.exec('BEGIN IMMEDIATE; ROLLBACK');
    if (version < latestSchemaVersion()) {
      db.close();
      r.ok(
        'database',
        `${path} is writable; run will upgrade its schema ${version} to ${latestSchemaVersion()}`,
      );
      return undefined;
    }
    r.ok('database', `${path} is writable`);
    return db;
  } catch (err) {
    r.bad(
      'database',
      `${path} is not writable (${describeError(err)})`,
      'give the service user write access to the file and its directory',
    );
    return undefined;
  }
}

export async function doctorCommand(args: string[], envFile: string | undefined): Promise<number> {
  parseCommandArgs(args, {}, 0);
  const r = new Report();
  let config: Config;
  let env: ReturnType<typeof environment>;
  try {
    env = environment(envFile);
    config = parseConfig(env, { requireCredentials: true });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    r.bad('configuration', err.message);
    return 1;
  }
  registerSecret(config.password);
  const unknown = unknownVariables(env);
  for (const { name, closest } of unknown)
    r.bad('configuration', `unknown setting ${name} is ignored`, `did you mean ${closest}?`);
  if (unknown.length === 0)
    r.ok('configuration', `API ${config.apiUrl}, live events ${config.events ? 'on' : 'off'}`);
  if (config.postgres) await checkPostgres(config.postgres, r);
  const db = checkDatabase(config, r) ?? openDatabase(':memory:', { create: true });
  const client = createZaptecClient({
    apiUrl: config.apiUrl,
    username: config.username!,
    password: config.password!,
    requestsPerMinute: config.requestsPerMinute,
    version: packageVersion(),
    ledger: new SqliteBudgetLedger(db),
    clock: systemClock,
    log: createLogger({ level: 'silent' }),
  });
  const deadline = () => Date.now() + 20_000;
  try {
    try {
      await client.tokens.token({ deadline: deadline() });
      r.ok('credentials', `Zaptec accepted the login of ${config.username}`);
    } catch (err) {
      if (err instanceof CredentialsError)
        r.bad(
          'credentials',
          'Zaptec refused the username or password',
          'check ZAPTEC_USERNAME and the password (file or credential)',
        );
      else if (err instanceof NetworkError)
        r.bad('API', `cannot reach ${config.apiUrl} (${err.code})`, 'check the network, DNS and any proxy');
      else if (err instanceof RateLimitedError)
        r.bad(
          'API',
          `the API budget allows no request before ${new Date(err.retryAt).toISOString()}`,
          'wait, or look at `zaptec-sync status`',
        );
      else r.bad('API', describeError(err));
      return 1;
    }
    r.ok('API', `${config.apiUrl} answers`);
    const skew = client.http.lastSkewMs;
    if (skew !== undefined && Math.abs(skew) > MAX_SKEW_MS) {
      r.bad(
        'clock',
        `this machine's clock is ${Math.round(skew / -1000)} s off the API's`,
        'enable time synchronisation (systemd-timesyncd or chrony)',
      );
    } else if (skew !== undefined) r.ok('clock', `within ${Math.ceil(Math.abs(skew) / 1000)} s of the API's`);
    if (!config.events) {
      r.ok('live events', 'off (ZAPTEC_EVENTS=off): state is kept by budgeted polling');
      return r.failures > 0 ? 1 : 0;
    }
    let installations = config.installations ?? new InventoryStore(db).activeInstallationIds();
    if (installations.length === 0) {
      installations = (await client.api.installations({ deadline: deadline() })).map((i) =>
        i.Id.toLowerCase(),
      );
    }
    if (installations.length === 0)
      r.bad(
        'installations',
        'the account sees no installation',
        'check the user’s roles in the Zaptec Portal',
      );
    /** A subscription's connection details: fetched (the key kept out of the output), or why not. */
    const details = async (
      label: string,
      fetch: () => Promise<ConnectionDetails>,
      refused: (status: number) => [string, string],
    ) => {
      let d: ConnectionDetails;
      try {
        d = await fetch();
        registerSecret(d.Password);
      } catch (err) {
        if (err instanceof HttpStatusError && err.permanent) r.bad(label, ...refused(err.status));
        else r.bad(label, describeError(err));
        return;
      }
      const problem = await checkSubscription(d, config.servicebusEndpoint);
      if (problem) r.bad(label, ...problem);
      else r.ok(label, `subscription ${d.Subscription} of topic ${d.Topic} answers at ${where(d, config)}`);
    };
    for (const id of installations)
      await details(
        `live events ${id}`,
        () => client.api.connectionDetails(id, { deadline: deadline() }),
        (status) => [
          `not available (HTTP ${status})`,
          'enable "Message subscription" in the installation’s settings in the Zaptec Portal, or set ZAPTEC_EVENTS=off',
        ],
      );
    for (const id of config.userGroups ?? [])
      await details(
        `user group ${id}`,
        () => client.api.userGroupConnectionDetails(id, { deadline: deadline() }),
        (status) => [
          `not available (HTTP ${status}); its installations keep their own subscriptions`,
          'check the id in ZAPTEC_USER_GROUPS; a user group’s message subscription is enabled by Zaptec support',
        ],
      );
    return r.failures > 0 ? 1 : 0;
  } finally {
    await client.close();
    db.close();
  }
}
