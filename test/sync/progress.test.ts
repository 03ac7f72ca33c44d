/** Issue 26 §5: long work says "n of N, about M minutes left" every few seconds, and `status` shows it. */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { DaemonRecord } from '../../src/store/daemon-row.js';
import { closeForReaders, openDatabase } from '../../src/store/database.js';
import { Progress } from '../../src/sync/progress.js';
import { VirtualClock } from '../clock.js';
import { cleanEnv, runCli, tempDir } from '../helpers.js';

function collector() {
  const lines: { msg: string }[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination }) };
}

describe('progress of long work', () => {
  it('a pass of 3,000 chargers at 9 a second: a line every 5 s with how many are left and how long, one at the end', () => {
    const clock = new VirtualClock();
    const { lines, log } = collector();
    const p = new Progress(log, clock);
    p.add('pass', 'state reads of stale chargers', 'chargers', 1000);
    p.add('pass', 'state reads of stale chargers', 'chargers', 2000);
    for (let i = 0; i < 3000; i++) {
      clock.advance(1000 / 9);
      p.done('pass');
      if (i === 899)
        expect(p.summary()).toBe('state reads of stale chargers: 900 of 3000 chargers, about 4 minutes left');
    }
    const messages = lines.map((l) => l.msg);
    // 333 s of work: a line every 5 s, and the last one.
    expect(messages.length).toBeGreaterThanOrEqual(65);
    expect(messages.length).toBeLessThanOrEqual(68);
    expect(messages[0]).toMatch(
      /^state reads of stale chargers: 4[56] of 3000 chargers, about 5 minutes left$/,
    );
    expect(messages.at(-1)).toBe('state reads of stale chargers: all 3000 chargers done in 6 minutes');
    expect(p.summary()).toBeUndefined();
  });

  it('a pass that ends within 5 s says nothing', () => {
    const clock = new VirtualClock();
    const { lines, log } = collector();
    const p = new Progress(log, clock);
    p.add('pass', 'charge-history backfill', 'installations', 3);
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      p.done('pass');
    }
    expect(lines).toEqual([]);
  });

  it('status shows the work under way that the heartbeat wrote', async () => {
    const path = join(tempDir(), 'z.db');
    const db = openDatabase(path, { create: true });
    const record = new DaemonRecord(db);
    record.started('0.1.0', process.pid, Date.now());
    record.heartbeat(
      Date.now(),
      [],
      'charge-history backfill: 12 of 300 installations, about 20 minutes left',
    );
    closeForReaders(db);
    const text = await runCli(['status'], { env: cleanEnv({ ZAPTEC_DB: path, ZAPTEC_EVENTS: 'off' }) });
    expect(text.stdout).toMatch(
      /under way\s+charge-history backfill: 12 of 300 installations, about 20 minutes left/,
    );
    const json = await runCli(['status', '--json'], { env: cleanEnv({ ZAPTEC_DB: path }) });
    expect(JSON.parse(json.stdout).progress).toBe(
      'charge-history backfill: 12 of 300 installations, about 20 minutes left',
    );
  });
});
