/**
 * The command runner's timing rules (CONTRACT §10) on the stepped clock, against a stand-in for Zaptec that
 * answers as told: 5xx and network errors retried with backoff for at most 2 minutes and then `failed`; a
 * restart whose answer was lost never sent again; a lost answer followed by a 528 taken as the command having
 * worked; a 528 never retried; no change observed within 2 minutes → `unconfirmed`, after one follow-up read.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkError } from '../../src/http/errors.js';
import { createLogger } from '../../src/log.js';
import { CommandStore } from '../../src/store/commands.js';
import { attachControl, openControl } from '../../src/store/control.js';
import { openDatabase } from '../../src/store/database.js';
import { InventoryStore } from '../../src/store/inventory.js';
import { ObservationStore } from '../../src/store/observations.js';
import { CommandRunner } from '../../src/sync/commands.js';
import { Problems } from '../../src/sync/problems.js';
import type { WriteAnswer } from '../../src/zaptec/api.js';
import { SteppedClock } from '../clock.js';
import { tempDir } from '../helpers.js';

const CHARGER = '00000000-0000-4000-8000-000000000001';
const INSTALLATION = '00000000-0000-4000-9000-000000000001';
const S = 1_000;

/** What the stand-in answers to each send, in turn (the last one repeated). */
type Answer = WriteAnswer | Error;

function setup(answers: Answer[]) {
  const clock = new SteppedClock();
  const dir = tempDir();
  const db = openDatabase(join(dir, 'z.db'), { create: true });
  attachControl(db, join(dir, 'control.db'));
  const inventory = new InventoryStore(db);
  inventory.replace(
    {
      installations: [{ id: INSTALLATION, name: 'Home', data: { MaxCurrent: 32, AvailableCurrent: 32 } }],
      circuits: [],
      chargers: [
        {
          id: CHARGER,
          installationId: INSTALLATION,
          circuitId: null,
          deviceId: 'ZAP000001',
          name: null,
          deviceType: 4,
          data: {},
        },
      ],
      hierarchyMissing: new Set<string>(),
    },
    clock.now(),
  );
  const observations = new ObservationStore(db, { historyDays: 7, now: () => clock.now() });
  const state = (stateId: number, value: string) =>
    observations.apply([{ chargerId: CHARGER, stateId, value, observedAt: clock.now(), source: 'event' }]);
  state(710, '3'); // charging
  state(718, '0');
  const sends: number[] = [];
  const followUps: number[] = [];
  const answer = async (): Promise<WriteAnswer> => {
    sends.push(clock.now());
    const a = answers[Math.min(sends.length, answers.length) - 1]!;
    if (a instanceof Error) throw a;
    return a;
  };
  const lines: { msg: string; requestedBy?: string; outcome?: string }[] = [];
  const log = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  const runner = new CommandRunner({
    store: new CommandStore(db),
    api: {
      sendCommand: answer,
      updateInstallation: answer,
      installation: async () => ({ Id: INSTALLATION, AvailableCurrent: 32 }) as never,
    },
    inventory,
    observations,
    readSoon: () => void followUps.push(clock.now()),
    enabled: true,
    clock,
    log,
    problems: new Problems(log, clock),
  });
  const consumer = openControl(join(dir, 'control.db'));
  const ask = (action: string) =>
    Number(
      consumer
        .prepare(
          "INSERT INTO commands (target, action, value, requested_by) VALUES ('ZAP000001', ?, NULL, 'ops')",
        )
        .run(action).lastInsertRowid,
    );
  const row = (id: number) =>
    consumer.prepare('SELECT status, outcome, detail, sent_at FROM commands WHERE id = ?').get(id) as {
      status: string;
      outcome: string | null;
      detail: string | null;
      sent_at: string | null;
    };
  const t0 = clock.now();
  /** Runs the clock to `t0 + ms` (after the runner's pending work has reached its next sleep). */
  const at = async (ms: number) => {
    await new Promise((r) => setTimeout(r, 5));
    await clock.runUntil(t0 + ms, 2);
  };
  cleanups.push(async () => {
    await runner.stop();
    consumer.close();
    db.close();
  });
  runner.start();
  return { clock, runner, ask, row, sends, followUps, at, t0, state, lines };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const ok: WriteAnswer = { status: 200, code: undefined, details: undefined };
const unavailable: WriteAnswer = { status: 503, code: undefined, details: undefined };
const rejected528: WriteAnswer = { status: 500, code: 528, details: 'DeviceCommandRejected' };
const timeout = () =>
  new NetworkError('POST', '/api/chargers/{id}/sendCommand/{n}', 'ATTEMPT_TIMEOUT', 'no answer');

describe('commands on the stepped clock', () => {
  it('a 5xx is retried with doubling pauses, and a later success is sent and confirmed by the pushed change', async () => {
    const t = setup([unavailable, unavailable, ok]);
    const id = t.ask('pause');
    await t.at(10 * S);
    expect(t.sends.map((s) => s - t.sends[0]!)).toEqual([0, 2 * S, 6 * S]); // 2 s, then 4 s
    expect(t.row(id).status).toBe('sent');
    t.state(718, '1');
    t.runner.observed();
    await t.at(12 * S);
    expect(t.row(id)).toMatchObject({ status: 'done', outcome: 'confirmed' });
  });

  it('a 5xx that lasts is failed within 2 minutes of the first attempt, and nothing is sent after', async () => {
    const t = setup([unavailable]);
    const id = t.ask('pause');
    await t.at(3 * 60 * S);
    const r = t.row(id);
    expect(r.outcome).toBe('failed');
    expect(r.detail).toMatch(/^Zaptec did not take it within 2 minutes \(\d+ attempts; last: HTTP 503\)$/);
    expect(t.sends.at(-1)! - t.sends[0]!).toBeLessThanOrEqual(2 * 60 * S);
    const n = t.sends.length;
    await t.at(10 * 60 * S);
    expect(t.sends).toHaveLength(n);
  });

  it('a restart whose answer was lost is failed at once, never sent a second time', async () => {
    const t = setup([timeout(), ok]);
    const id = t.ask('restart');
    await t.at(3 * 60 * S);
    expect(t.sends).toHaveLength(1);
    expect(t.row(id).outcome).toBe('failed');
    expect(t.row(id).detail).toMatch(/it may have been carried out, so it is not sent again$/);
  });

  it('a pause whose answer was lost, answered 528 when sent again, took effect: sent, then confirmed', async () => {
    const t = setup([timeout(), rejected528]);
    const id = t.ask('pause');
    await t.at(5 * S);
    expect(t.sends).toHaveLength(2);
    expect(t.row(id)).toMatchObject({ status: 'sent', outcome: null });
    expect(t.row(id).detail).toMatch(/as it does when the command took effect$/);
    t.state(718, '1');
    t.runner.observed();
    await t.at(7 * S);
    expect(t.row(id).outcome).toBe('confirmed');
  });

  it('a 528 is rejected at once and never retried', async () => {
    const t = setup([rejected528, ok]);
    const id = t.ask('pause');
    await t.at(3 * 60 * S);
    expect(t.sends).toHaveLength(1);
    expect(t.row(id).outcome).toBe('rejected');
    expect(t.lines.find((l) => l.outcome === 'rejected')?.requestedBy).toBe('ops');
  });

  it('accepted but no change observed: one follow-up read after 20 s, then unconfirmed at 2 minutes', async () => {
    const t = setup([ok]);
    const id = t.ask('pause');
    await t.at(119 * S);
    expect(t.row(id).status).toBe('sent');
    expect(t.followUps).toHaveLength(1);
    const sentAt = Date.parse(t.row(id).sent_at!);
    expect(t.followUps[0]! - sentAt).toBeGreaterThanOrEqual(20 * S);
    expect(t.followUps[0]! - sentAt).toBeLessThan(22 * S);
    await t.at(125 * S);
    expect(t.row(id)).toMatchObject({ status: 'done', outcome: 'unconfirmed' });
    expect(t.sends).toHaveLength(1);
  });
});
