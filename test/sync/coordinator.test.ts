/** issue 14 §2: the reactions between the daemon's parts, in one place, driven by hand. */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { type CoordinatedParts, Coordinator } from '../../src/sync/coordinator.js';
import { Problems } from '../../src/sync/problems.js';
import { systemClock } from '../../src/time.js';

function parts() {
  const calls: string[] = [];
  const log =
    (name: string) =>
    (...args: unknown[]) => {
      calls.push(
        `${name} ${args.map((a) => (typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' ')}`,
      );
    };
  const quiet = createLogger({ level: 'silent' });
  const p = {
    observations: { expect: log('expect') },
    syncStatus: { retain: log('retain'), ensureAll: log('ensureAll'), setEvents: log('setEvents') },
    stateReader: {
      resync: log('resync'),
      prefetch: log('prefetch'),
      modeChanged: log('modeChanged'),
      setPolling: log('setPolling'),
      afterGap: log('afterGap'),
      readSoon: log('readSoon'),
    },
    lookup: { unknownSeen: log('unknownSeen') },
    live: { connected: () => false, follow: async (ids: string[]) => log('follow')(ids) },
    chargeHistory: { wake: log('wake'), afterGap: log('historyGap') },
    problems: new Problems(quiet, systemClock),
  };
  return { calls, parts: p as unknown as CoordinatedParts };
}

const change = { chargerId: 'c1', stateId: 710, value: '1', previous: '3' };

describe('the coordinator', () => {
  it('looks up unknown chargers from events and polls alike; only a pushed session boundary gets a follow-up read', () => {
    const { calls, parts: p } = parts();
    const c = new Coordinator(true, () => p);
    c.applied(
      {
        applied: 1,
        history: 1,
        modeChanges: [change],
        unknownChargers: ['u1'],
        newValues: 0,
        cameOnline: [],
      },
      'poll',
    );
    expect(calls).toEqual(['unknownSeen u1']);
    calls.length = 0;
    c.applied(
      {
        applied: 1,
        history: 1,
        modeChanges: [change],
        unknownChargers: ['u2'],
        newValues: 0,
        cameOnline: [],
      },
      'event',
    );
    expect(calls).toEqual(['unknownSeen u2', `modeChanged ${JSON.stringify(change)}`]);
  });

  it('after an inventory pass: status rows, polling until connected, subscriptions, a resync and charge history; none after stopping', async () => {
    const { calls, parts: p } = parts();
    const c = new Coordinator(true, () => p);
    c.inventoryRefreshed(['i1']);
    await Promise.resolve();
    expect(calls).toEqual([
      'retain ["i1"]',
      'ensureAll ["i1"] connecting',
      'setPolling ["i1"] true',
      'follow ["i1"]',
      'resync ',
      'wake ',
    ]);
    calls.length = 0;
    c.stopping();
    c.followInstallations(['i1']);
    await Promise.resolve();
    expect(calls.some((l) => l.startsWith('follow'))).toBe(false);
    c.eventsGap('i1');
    c.eventsConnected('i1', true);
    expect(calls.slice(-3)).toEqual(['afterGap i1', 'historyGap i1', 'setPolling i1 false']);
  });

  it('a charger found by a lookup is read now and gets its reconciliation slot without waiting for an inventory pass', () => {
    const { calls, parts: p } = parts();
    const c = new Coordinator(true, () => p);
    c.chargerFound('n1');
    expect(calls).toEqual(['resync ', 'readSoon n1 newly found charger']);
  });

  it('a first start follows the installations once its inventory pass knows them; a daemon that follows stored ones waits for the pass', () => {
    const first = parts();
    const c = new Coordinator(true, () => first.parts);
    c.followInstallations([]); // the start, with nothing stored
    first.calls.length = 0;
    c.installationsKnown(['i1', 'i2']);
    expect(first.calls).toContain('follow ["i1","i2"]');
    expect(first.calls).toContain('setPolling ["i1","i2"] true');
    const again = parts();
    const d = new Coordinator(true, () => again.parts);
    d.followInstallations(['i1']); // the stored inventory's
    again.calls.length = 0;
    d.installationsKnown(['i1', 'i3']);
    expect(again.calls).toEqual([]);
  });

  it('its parts are built with its reactions, which refuse to run while the parts are being built', () => {
    const { parts: p } = parts();
    let handed: Coordinator | undefined;
    const c = new Coordinator(false, (reactions) => {
      handed = reactions;
      expect(() => reactions.eventsGap('i1')).toThrow(/while its parts were being built/);
      return p;
    });
    expect(handed).toBe(c);
    expect(() => c.eventsGap('i1')).not.toThrow();
  });
});
