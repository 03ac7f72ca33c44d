import { describe, expect, it } from 'vitest';
import { isoMs, parseZaptecTime } from '../src/time.js';

describe('parseZaptecTime', () => {
  it.each([
    ['2022-12-05T13:10:10.837', '2022-12-05T13:10:10.837Z'],
    ['2022-12-01T00:39:23.78', '2022-12-01T00:39:23.780Z'],
    ['2022-09-16T08:06:11', '2022-09-16T08:06:11.000Z'],
    ['2023-08-03T00:00:00.0617Z', '2023-08-03T00:00:00.061Z'],
    ['2025-07-23T22:42:37.530253Z', '2025-07-23T22:42:37.530Z'],
    ['2023-09-28T16:00:00.0000000Z', '2023-09-28T16:00:00.000Z'],
    ['2024-01-05T15:10:10.837+02:00', '2024-01-05T13:10:10.837Z'],
    ['2024-01-05T10:10:10.837-0300', '2024-01-05T13:10:10.837Z'],
  ])('reads %s as UTC %s', (input, expected) => {
    expect(isoMs(parseZaptecTime(input)!)).toBe(expected);
  });

  it.each([
    '',
    'yesterday',
    '2022-13-05T13:10:10',
    '2022-02-30T13:10:10',
    '1e9',
    '2022-12-05',
    '2022-12-05T25:00:00',
  ])('refuses %j', (input) => {
    expect(parseZaptecTime(input)).toBeUndefined();
  });
});
