/**
 * OCMF (Open Charge Metering Format, rev 1.4.1) as Zaptec chargers write it (sessions.md §A4):
 * `OCMF|<payload JSON>|<signature JSON>`, the signature section only on MID chargers (Pro MID, Go+:
 * `ECDSA-secp384r1-SHA256`, base64 DER). The payload is verified byte for byte as received, so it is cut out
 * of the string, never re-serialised. Verification uses Node's own `crypto` (OpenSSL): the algorithms are
 * plain ECDSA over SHA-256 with a DER SubjectPublicKeyInfo key and a DER signature, which `crypto.verify` takes
 * as they come; an OCMF library would add a dependency for a split on `|` and one call.
 */
import { createPublicKey, verify } from 'node:crypto';

export interface OcmfReading {
  /** `TX`: B begin, E end, T tariff change, … (absent on fiscal readings). */
  tx: string | undefined;
  /** `RV` in kWh (a `Wh` unit is converted); undefined when the reading carries no value (a meter error). */
  kwh: number | undefined;
  /** `TM` as written, e.g. `2024-03-09T09:54:55,000+00:00 R`. */
  time: string | undefined;
}

export interface ParsedOcmf {
  /** The payload section exactly as received: what the signature covers. */
  payloadText: string;
  payload: Record<string, unknown>;
  /** `GS`, the gateway (charger) serial. */
  serial: string | undefined;
  readings: OcmfReading[];
  /** The signature section, when there is one. */
  signature: { algorithm: string; encoding: string; mime: string | undefined; data: string } | undefined;
}

export class OcmfError extends Error {
  override name = 'OcmfError';
}

/**
 * Parses an OCMF string; throws OcmfError with the reason when it is not OCMF. The string is split at the
 * first and the last `|` (CONTRACT §7 "OCMF"): a `|` inside the payload's JSON is text, not a section break.
 * When the part after the last `|` is not a JSON object, there is no signature section and it all is payload.
 */
export function parseOcmf(text: string): ParsedOcmf {
  const first = text.indexOf('|');
  if (first < 0 || text.slice(0, first) !== 'OCMF') throw new OcmfError('does not start with OCMF|');
  const last = text.lastIndexOf('|');
  let payloadText = text.slice(first + 1);
  let signatureText: string | undefined;
  if (last > first && isJsonObject(text.slice(last + 1))) {
    payloadText = text.slice(first + 1, last);
    signatureText = text.slice(last + 1);
  }
  const payload = object(payloadText, 'payload');
  const rd = Array.isArray(payload.RD) ? payload.RD : [];
  // `RU` may be given only on the first reading (Zaptec Pro): it holds for the rest.
  let unit = 'kWh';
  const readings = rd.map((r): OcmfReading => {
    const row = (r && typeof r === 'object' ? r : {}) as Record<string, unknown>;
    if (typeof row.RU === 'string') unit = row.RU;
    const value = typeof row.RV === 'number' ? row.RV : undefined;
    return {
      tx: typeof row.TX === 'string' ? row.TX : undefined,
      kwh: value === undefined ? undefined : unit === 'Wh' ? value / 1000 : value,
      time: typeof row.TM === 'string' ? row.TM : undefined,
    };
  });
  let signature: ParsedOcmf['signature'];
  if (signatureText !== undefined) {
    const s = object(signatureText, 'signature');
    if (typeof s.SD !== 'string') throw new OcmfError('its signature section has no SD');
    signature = {
      algorithm: typeof s.SA === 'string' ? s.SA : 'ECDSA-secp256r1-SHA256',
      encoding: typeof s.SE === 'string' ? s.SE : 'hex',
      mime: typeof s.SM === 'string' ? s.SM : undefined,
      data: s.SD,
    };
  }
  return {
    payloadText,
    payload,
    serial: typeof payload.GS === 'string' ? payload.GS : undefined,
    readings,
    signature,
  };
}

function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
}

function object(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new OcmfError(`its ${what} section is not JSON (${(err as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new OcmfError(`its ${what} section is not an object`);
  return v as Record<string, unknown>;
}

/** The begin and end readings (`TX` B and E), kWh. */
export function meterReadings(o: ParsedOcmf): { start: number | undefined; end: number | undefined } {
  return {
    start: o.readings.find((r) => r.tx === 'B')?.kwh,
    end: o.readings.findLast((r) => r.tx === 'E')?.kwh,
  };
}

/** OCMF's `SA` names (rev 1.4.1, table 23): ECDSA on a named curve, with a hash. */
const ALGORITHM = /^ECDSA-(\w+)-(SHA256|SHA384|SHA512)$/;

/** OCMF's curve names, as OpenSSL (and so Node's KeyObject) names the same curves. */
const CURVES: Record<string, string> = {
  secp192k1: 'secp192k1',
  secp256k1: 'secp256k1',
  secp192r1: 'prime192v1',
  secp256r1: 'prime256v1',
  secp384r1: 'secp384r1',
  secp521r1: 'secp521r1',
  brainpool256r1: 'brainpoolP256r1',
  brainpool384r1: 'brainpoolP384r1',
  brainpool512r1: 'brainpoolP512r1',
};

/**
 * Whether the signature verifies against the charger's public key (981 `MIDPublicKey`: base64 DER
 * SubjectPublicKeyInfo, PEM armour tolerated). Undefined when there is nothing to verify: no signature, no
 * key, an algorithm or encoding this does not know. `false` when the key or signature cannot be read, and when
 * the key is not on the curve the record's `SA` names (CONTRACT §7 "OCMF"): the record must say truly how it
 * was signed.
 */
export function verifyOcmf(o: ParsedOcmf, publicKey: string | null | undefined): boolean | undefined {
  const sig = o.signature;
  if (!sig || !publicKey?.trim()) return undefined;
  const algorithm = ALGORITHM.exec(sig.algorithm);
  const curve = algorithm ? CURVES[algorithm[1]!] : undefined;
  if (!algorithm || !curve) return undefined;
  if (sig.mime !== undefined && sig.mime !== 'application/x-der') return undefined;
  const encoding = sig.encoding === 'base64' ? 'base64' : sig.encoding === 'hex' ? 'hex' : undefined;
  if (!encoding) return undefined;
  try {
    const der = Buffer.from(publicKey.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const key = createPublicKey({ key: der, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== curve) return false;
    return verify(
      algorithm[2]!.toLowerCase(),
      Buffer.from(o.payloadText, 'utf8'),
      { key, dsaEncoding: 'der' },
      Buffer.from(sig.data, encoding),
    );
  } catch {
    return false;
  }
}
