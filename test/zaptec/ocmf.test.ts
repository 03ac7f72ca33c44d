/**
 * CONTRACT §7 "OCMF": the verifier against records signed by something other than our own code (Debian's
 * `openssl` command), the algorithm a record names checked against the key's curve, a `|` inside the payload,
 * and the real Zaptec Pro MID charge-history record (../shared/realdata, stelund) down to its B/E readings.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { midKeyPair } from '../../src/simulator/fleet.js';
import { meterReadings, parseOcmf, verifyOcmf } from '../../src/zaptec/ocmf.js';
import { hasCommand, tempDir } from '../helpers.js';

const openssl = hasCommand('openssl', ['version']);
if (!openssl) console.warn('OCMF tests against openssl skipped: no openssl command on this machine');

/** A key pair made by openssl on `curve`, and a signer that signs a payload with `openssl dgst`. */
function opensslSigner(curve: string, hash = 'sha256') {
  const dir = tempDir();
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', ['ecparam', '-name', curve, '-genkey', '-noout', '-out', keyFile]);
  const spki = execFileSync('openssl', ['ec', '-in', keyFile, '-pubout', '-outform', 'DER'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const sign = (payload: string) => {
    const file = join(dir, 'payload');
    writeFileSync(file, payload);
    return execFileSync('openssl', ['dgst', `-${hash}`, '-sign', keyFile, file]).toString('base64');
  };
  return { publicKey: spki.toString('base64'), sign };
}

const PAYLOAD =
  '{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR000001","RD":[{"TM":"2026-11-01T08:00:00,000+00:00 R","TX":"B","RV":10.5,"RU":"kWh"},{"TM":"2026-11-01T09:00:00,000+00:00 R","TX":"E","RV":17.25}],"ZS":"a|b"}';

const record = (payload: string, sa: string, sd: string) =>
  `OCMF|${payload}|${JSON.stringify({ SA: sa, SE: 'base64', SD: sd })}`;

describe.runIf(openssl)('OCMF records signed by openssl', () => {
  it('a secp384r1 record verifies; one changed byte does not; a | inside the payload is text', () => {
    const { publicKey, sign } = opensslSigner('secp384r1');
    const text = record(PAYLOAD, 'ECDSA-secp384r1-SHA256', sign(PAYLOAD));
    const parsed = parseOcmf(text);
    expect(parsed.payloadText).toBe(PAYLOAD);
    expect(parsed.payload.ZS).toBe('a|b');
    expect(meterReadings(parsed)).toEqual({ start: 10.5, end: 17.25 });
    expect(verifyOcmf(parsed, publicKey)).toBe(true);
    expect(verifyOcmf(parseOcmf(text.replace('17.25', '17.26')), publicKey)).toBe(false);
  });

  it('secp256r1 (prime256v1) and brainpool256r1 records verify under their own names', () => {
    for (const [curve, name] of [
      ['prime256v1', 'secp256r1'],
      ['brainpoolP256r1', 'brainpool256r1'],
    ] as const) {
      const { publicKey, sign } = opensslSigner(curve);
      expect(verifyOcmf(parseOcmf(record(PAYLOAD, `ECDSA-${name}-SHA256`, sign(PAYLOAD))), publicKey)).toBe(
        true,
      );
    }
  });

  it("a record whose SA names another curve or hash than the key's is not valid (0), even when the signature is", () => {
    const p384 = opensslSigner('secp384r1');
    const sd = p384.sign(PAYLOAD);
    expect(verifyOcmf(parseOcmf(record(PAYLOAD, 'ECDSA-secp256r1-SHA256', sd)), p384.publicKey)).toBe(false);
    expect(verifyOcmf(parseOcmf(record(PAYLOAD, 'ECDSA-brainpool384r1-SHA256', sd)), p384.publicKey)).toBe(
      false,
    );
    expect(verifyOcmf(parseOcmf(record(PAYLOAD, 'ECDSA-secp384r1-SHA384', sd)), p384.publicKey)).toBe(false);
    const sha384 = opensslSigner('secp384r1', 'sha384');
    expect(
      verifyOcmf(
        parseOcmf(record(PAYLOAD, 'ECDSA-secp384r1-SHA384', sha384.sign(PAYLOAD))),
        sha384.publicKey,
      ),
    ).toBe(true);
  });
});

describe('OCMF sections', () => {
  it('an unsigned record with a | in its payload is one payload, no signature', () => {
    const parsed = parseOcmf(`OCMF|${PAYLOAD}`);
    expect(parsed.payloadText).toBe(PAYLOAD);
    expect(parsed.signature).toBeUndefined();
  });

  it("the simulator's MID key is the same for a seed and a charger, and differs for another seed", () => {
    const spki = (seed: number, id: string) =>
      midKeyPair(seed, id).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    expect(spki(1, 'c1')).toBe(spki(1, 'c1'));
    expect(spki(1, 'c1')).not.toBe(spki(2, 'c1'));
    expect(spki(1, 'c1')).not.toBe(spki(1, 'c2'));
  });
});

const REST = fileURLToPath(new URL('../../../shared/realdata/rest-samples.json', import.meta.url));
const present = existsSync(REST);
if (!present) console.warn(`realdata OCMF test skipped: ${REST} is not beside the checkout`);

describe.runIf(present)('the real Zaptec Pro MID charge-history record (stelund/charging-costs)', () => {
  it('parses down to its B and E readings and its signature section', () => {
    const samples = JSON.parse(readFileSync(REST, 'utf8')) as Record<
      string,
      { source: { repo: string }; body: { Data?: { SignedSession?: string; Energy?: number }[] } }[]
    >;
    const stelund = samples['GET /api/chargehistory']!.find(
      (s) => s.source.repo === 'stelund/charging-costs',
    )!;
    const signed = stelund.body.Data!.filter((d) => d.SignedSession?.includes('Zaptec Pro MID'));
    expect(signed.length).toBeGreaterThan(0);
    for (const item of signed) {
      const parsed = parseOcmf(item.SignedSession!);
      expect(parsed.serial).toBe('ZPR294591');
      expect(parsed.signature).toMatchObject({ algorithm: 'ECDSA-secp384r1-SHA256', encoding: 'base64' });
      const { start, end } = meterReadings(parsed);
      expect(start).toEqual(expect.any(Number));
      expect(end).toEqual(expect.any(Number));
      expect(end! - start!).toBeCloseTo(item.Energy!, 3);
      // No public key was recorded with it: nothing to verify, not a failure.
      expect(verifyOcmf(parsed, undefined)).toBeUndefined();
    }
    const first = parseOcmf(signed[0]!.SignedSession!);
    expect(meterReadings(first)).toEqual({ start: 0.842, end: 3.369 });
  });
});
