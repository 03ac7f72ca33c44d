import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyError, decodeObservation } from '../../src/zaptec/message.js';
import { decodeNbfx, encodeNbfx } from '../../src/zaptec/nbfx.js';

/** The real frames of zaptec-api.md §5.5 (HA's test_utils "real-world example"). */
const SHORT = Buffer.concat([
  Buffer.from('@\x06string\x083http://schemas.microsoft.com/2003/10/Serialization/\x98\xa5', 'latin1'),
  Buffer.from(
    '{"DeviceId":"ZAP000000","DeviceType":4,"ChargerId":"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx","StateId":523,"Timestamp":"2023-07-28T09:07:19.23","ValueAsString":"0.000"}',
  ),
  Buffer.from([0x01]),
]);
const LONG_JSON =
  '{"DeviceId":"ZAP000000","DeviceType":4,"ChargerId":"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx","StateId":554,"Timestamp":"2023-08-03T00:00:00.0617Z","ValueAsString":"OCMF|{\\"FV\\":\\"1.0\\",\\"GI\\":\\"ZAPTEC GO\\",\\"GS\\":\\"ZAP000000\\",\\"GV\\":\\"2.1.0.4\\",\\"PG\\":\\"F1\\",\\"RD\\":[{\\"TM\\":\\"2023-08-03T00:00:00,000+00:00 R\\",\\"RV\\":179.715,\\"RI\\":\\"1-0:1.8.0\\",\\"RU\\":\\"kWh\\",\\"RT\\":\\"AC\\",\\"ST\\":\\"G\\"}]}"}';
const LONG = Buffer.concat([
  Buffer.from('@\x06string\x083http://schemas.microsoft.com/2003/10/Serialization/\x9a', 'latin1'),
  Buffer.from([0x87, 0x01]),
  Buffer.from(LONG_JSON),
  Buffer.from([0x01]),
]);
const ID = '93d603a7-ff53-4ed8-8dd6-f79c94819458';

describe('MC-NBFX', () => {
  it('decodes the real frames (Chars8Text and Chars16Text)', () => {
    expect(SHORT.length).toBe(2 + 6 + 2 + 0x33 + 2 + 0xa5 + 1); // element, xmlns, Chars8Text, JSON, end
    expect(JSON.parse(decodeNbfx(SHORT))).toMatchObject({ StateId: 523, ValueAsString: '0.000' });
    expect(Buffer.byteLength(LONG_JSON)).toBe(0x0187);
    expect(JSON.parse(decodeNbfx(LONG)).ValueAsString).toMatch(/^OCMF\|/);
  });

  it('round-trips what the simulator publishes, at every text size', () => {
    for (const n of [0, 1, 255, 256, 65535, 65536]) {
      const text = 'x'.repeat(n);
      expect(decodeNbfx(encodeNbfx(text))).toBe(text);
    }
  });

  it('turns random and truncated input into BodyError, never anything else (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeObservation(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(BodyError);
        }
      }),
      { numRuns: 2000 },
    );
    for (const frame of [SHORT, LONG]) {
      for (let n = 0; n < frame.length; n++)
        expect(() => decodeNbfx(frame.subarray(0, n))).toThrow(BodyError);
    }
    fc.assert(
      fc.property(fc.anything(), (body) => {
        try {
          decodeObservation(body);
        } catch (err) {
          expect(err).toBeInstanceOf(BodyError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodeObservation', () => {
  const json = {
    ChargerId: ID,
    StateId: 710,
    Timestamp: '2025-07-23T22:42:37.530253Z',
    ValueAsString: '5',
    DeviceType: 4,
  };

  it('reads MC-NBFX, a parsed JSON data section, a Buffer of JSON and a string alike', () => {
    const expected = {
      chargerId: ID,
      stateId: 710,
      value: '5',
      observedAt: Date.parse('2025-07-23T22:42:37.530Z'),
      source: 'event',
      deviceType: 4,
    };
    expect(decodeObservation(encodeNbfx(JSON.stringify(json)))).toEqual(expected);
    expect(decodeObservation(json)).toEqual(expected);
    expect(decodeObservation(Buffer.from(JSON.stringify(json)))).toEqual(expected);
    expect(decodeObservation(JSON.stringify(json))).toEqual(expected);
  });

  it('keeps an absent value as null and an empty one as ""', () => {
    expect(decodeObservation({ ...json, ValueAsString: undefined }).value).toBeNull();
    expect(decodeObservation({ ...json, ValueAsString: '' }).value).toBe('');
  });

  it.each([
    [{ ...json, ChargerId: undefined }, /ChargerId/],
    [{ ...json, ChargerId: 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx' }, /ChargerId/],
    [{ ...json, StateId: 'abc' }, /StateId/],
    [{ ...json, Timestamp: undefined }, /Timestamp/],
    [{ ...json, Timestamp: 'yesterday' }, /Timestamp/],
    ['not json', /not JSON/],
    [[1, 2], /array/],
  ])('says what is wrong: %j', (body, reason) => {
    expect(() => decodeObservation(body)).toThrow(reason);
  });
});
