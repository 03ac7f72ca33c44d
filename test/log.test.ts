import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, describeError, registerSecret } from '../src/log.js';

function collector() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, stream };
}

describe('logging', () => {
  const password = 'Pa$$w0rd "with" \\quotes/&=';
  const token = 'eyJhbGciOiJSUzI1NiJ9.secret-token-body.signature';
  const sasKey = 'SASkey+/AbCdEf0123456789=';

  it('never writes a registered secret, whatever the shape it hides in', () => {
    registerSecret(password);
    registerSecret(token);
    registerSecret(sasKey);
    const { lines, stream } = collector();
    const log = createLogger({ destination: stream, level: 'trace' });
    log.info({ password }, 'by key');
    log.info({ nested: { deep: { value: `Bearer ${token}` } } }, 'nested');
    log.warn(`connection string Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=${sasKey}`);
    log.error({ err: new Error(`token ${token} refused`) }, 'error object');
    log.info({ url: `https://x/?password=${encodeURIComponent(password)}` }, 'url-encoded');
    log.debug({ body: JSON.stringify({ password }) }, 'json inside json');
    expect(lines.length).toBe(6);
    const all = lines.join('');
    for (const s of [
      password,
      token,
      sasKey,
      encodeURIComponent(password),
      JSON.stringify(password).slice(1, -1),
    ]) {
      expect(all).not.toContain(s);
    }
    expect(all).toContain('[redacted]');
    expect(describeError(new Error(`x ${sasKey}`))).toBe('x [redacted]');
  });

  it('prefixes syslog priorities for journald', () => {
    const { lines, stream } = collector();
    const log = createLogger({ destination: stream, journal: true, level: 'debug' });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<7>', '<6>', '<4>', '<3>', '<2>']);
    expect(JSON.parse(lines[1]!.slice(3)).msg).toBe('i');
  });
});
