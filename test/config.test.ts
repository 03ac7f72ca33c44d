import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, environment, parseConfig, unknownVariables } from '../src/config.js';
import { CONTRACT_VARIABLES } from './contract.js';
import { tempDir } from './helpers.js';

const creds = { ZAPTEC_USERNAME: 'ops@example.com', ZAPTEC_PASSWORD: 'pw-from-env' };

describe('configuration', () => {
  it('has the contract defaults', () => {
    const c = parseConfig(creds, { requireCredentials: true });
    expect(c).toMatchObject({
      apiUrl: 'https://api.zaptec.com',
      dbPath: './zaptec.db',
      installations: undefined,
      events: true,
      servicebusEndpoint: undefined,
      reconcileMinutes: 60,
      inventoryCron: '7 * * * *',
      requestsPerMinute: 600,
      historyDays: 7,
      metrics: undefined,
      logLevel: 'info',
    });
  });

  it('reads every variable', () => {
    const c = parseConfig({
      ...creds,
      ZAPTEC_API_URL: 'http://127.0.0.1:8080/',
      ZAPTEC_DB: '/tmp/x.db',
      ZAPTEC_INSTALLATIONS: '2BBEC6F9-C3CE-4EDF-A72F-B1B2A663C6BA, 93d603a7-ff53-4ed8-8dd6-f79c94819458',
      ZAPTEC_EVENTS: 'off',
      ZAPTEC_SERVICEBUS_ENDPOINT: 'amqp://127.0.0.1:5672',
      ZAPTEC_RECONCILE_MINUTES: '15',
      ZAPTEC_INVENTORY_CRON: '*/30 * * * *',
      ZAPTEC_REQUESTS_PER_MINUTE: '1000',
      ZAPTEC_HISTORY_DAYS: '0',
      ZAPTEC_METRICS: '127.0.0.1:9464',
      LOG_LEVEL: 'debug',
    });
    expect(c.apiUrl).toBe('http://127.0.0.1:8080');
    // Ids are lower case inside the daemon, as Zaptec's payloads are stored: normalised where they enter.
    expect(c.installations).toEqual([
      '2bbec6f9-c3ce-4edf-a72f-b1b2a663c6ba',
      '93d603a7-ff53-4ed8-8dd6-f79c94819458',
    ]);
    expect(c.events).toBe(false);
    expect(c.servicebusEndpoint?.port).toBe('5672');
    expect(c.reconcileMinutes).toBe(15);
    expect(c.historyDays).toBe(0);
    expect(c.metrics).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it.each([
    ['ZAPTEC_API_URL', 'ftp://x'],
    ['ZAPTEC_INSTALLATIONS', 'not-a-guid'],
    ['ZAPTEC_EVENTS', 'yes'],
    ['ZAPTEC_SERVICEBUS_ENDPOINT', 'http://127.0.0.1:5672'],
    ['ZAPTEC_SERVICEBUS_ENDPOINT', 'amqp://broker.example.com:5672'],
    ['ZAPTEC_RECONCILE_MINUTES', '0'],
    ['ZAPTEC_RECONCILE_MINUTES', '1.5'],
    ['ZAPTEC_INVENTORY_CRON', 'every hour'],
    ['ZAPTEC_REQUESTS_PER_MINUTE', '1001'],
    ['ZAPTEC_HISTORY_DAYS', '-1'],
    ['ZAPTEC_METRICS', 'nope'],
    ['LOG_LEVEL', 'loud'],
  ])('names %s when it is %j', (variable, value) => {
    expect(() => parseConfig({ ...creds, [variable]: value })).toThrow(
      expect.objectContaining({ name: 'ConfigError', variable }),
    );
  });

  it('requires credentials only where asked', () => {
    expect(() => parseConfig({}, { requireCredentials: true })).toThrow(ConfigError);
    expect(parseConfig({}).username).toBeUndefined();
  });

  it('takes the password from the systemd credential first, then the file, then the variable', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'zaptec-password'), 'from-credential\n');
    writeFileSync(join(dir, 'pwfile'), 'from-file\n');
    const base = {
      ZAPTEC_USERNAME: 'u',
      ZAPTEC_PASSWORD: 'from-env',
      ZAPTEC_PASSWORD_FILE: join(dir, 'pwfile'),
    };
    expect(parseConfig({ ...base, CREDENTIALS_DIRECTORY: dir }).password).toBe('from-credential');
    expect(parseConfig(base).password).toBe('from-file');
    expect(parseConfig({ ...base, ZAPTEC_PASSWORD_FILE: undefined }).password).toBe('from-env');
    expect(() => parseConfig({ ...base, ZAPTEC_PASSWORD_FILE: join(dir, 'missing') })).toThrow(
      expect.objectContaining({ variable: 'ZAPTEC_PASSWORD_FILE' }),
    );
  });

  it('reads an env file beneath the environment', () => {
    const dir = tempDir();
    const file = join(dir, 'zaptec.env');
    writeFileSync(file, 'ZAPTEC_DB=/from/file.db\nZAPTEC_EVENTS=off\n# comment\n');
    process.env.ZAPTEC_EVENTS = 'on';
    try {
      const env = environment(file);
      expect(env.ZAPTEC_DB).toBe('/from/file.db');
      expect(env.ZAPTEC_EVENTS).toBe('on');
    } finally {
      delete process.env.ZAPTEC_EVENTS;
    }
    expect(() => environment(join(dir, 'absent.env'))).toThrow(ConfigError);
  });

  it('puts the database in the state directory under systemd', () => {
    expect(parseConfig({ STATE_DIRECTORY: '/var/lib/zaptec-sync' }).dbPath).toBe(
      '/var/lib/zaptec-sync/zaptec.db',
    );
  });
});

describe('reconciliation spacing', () => {
  it('the longest defaults to 360 minutes (or the shortest, when that is longer) and may not be below the shortest', () => {
    expect(parseConfig({}).reconcileMaxMinutes).toBe(360);
    expect(parseConfig({ ZAPTEC_RECONCILE_MINUTES: '600' }).reconcileMaxMinutes).toBe(600);
    expect(parseConfig({ ZAPTEC_RECONCILE_MAX_MINUTES: '60' }).reconcileMaxMinutes).toBe(60);
    expect(() =>
      parseConfig({ ZAPTEC_RECONCILE_MINUTES: '120', ZAPTEC_RECONCILE_MAX_MINUTES: '60' }),
    ).toThrow(/ZAPTEC_RECONCILE_MAX_MINUTES: must be at least ZAPTEC_RECONCILE_MINUTES/);
  });
});

describe('known settings', () => {
  it('every variable of the contract is known, so none is ever warned about as a misspelling', () => {
    const env = Object.fromEntries(CONTRACT_VARIABLES.map((v) => [v, 'x']));
    expect(unknownVariables(env)).toEqual([]);
  });

  it('a misspelt one is named with the closest real one', () => {
    expect(unknownVariables({ ZAPTEC_RECONCILE_MINUTS: '5', ZAPTEC_USERNAME: 'u', HOME: '/' })).toEqual([
      { name: 'ZAPTEC_RECONCILE_MINUTS', closest: 'ZAPTEC_RECONCILE_MINUTES' },
    ]);
  });
});
