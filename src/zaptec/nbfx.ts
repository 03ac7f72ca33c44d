/**
 * Zaptec's Service Bus bodies are .NET DataContract binary XML (MC-NBFX) wrapping one
 * `<string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">` whose text is the JSON
 * (zaptec-api.md §3.3). Only the records that shape uses are read; anything else is a typed error.
 */
export class BodyError extends Error {
  override name = 'BodyError';
  readonly code = 'BAD_BODY';
}

const SHORT_ELEMENT = 0x40;
const SHORT_XMLNS = 0x08;
const CHARS8 = 0x98;
const CHARS16 = 0x9a;
const CHARS32 = 0x9c;
const END_ELEMENT = 0x01;
const SERIALIZATION_NS = 'http://schemas.microsoft.com/2003/10/Serialization/';

/** True when the bytes look like the MC-NBFX string wrapper (first record a ShortElement). */
export function isNbfx(body: Uint8Array): boolean {
  return body.length > 2 && body[0] === SHORT_ELEMENT;
}

/** The text inside the MC-NBFX `<string>` element. */
export function decodeNbfx(body: Uint8Array): string {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let i = 0;
  const need = (n: number, what: string) => {
    if (i + n > buf.length) throw new BodyError(`MC-NBFX body is truncated in ${what}`);
  };
  const readName = (what: string): string => {
    need(1, what);
    const len = buf[i++]!;
    need(len, what);
    const s = buf.toString('utf8', i, i + len);
    i += len;
    return s;
  };
  need(1, 'the first record');
  if (buf[i++] !== SHORT_ELEMENT) throw new BodyError('MC-NBFX body does not start with an element');
  readName('the element name');
  let text = '';
  let sawText = false;
  for (;;) {
    need(1, 'a record');
    const record = buf[i++]!;
    if (record === SHORT_XMLNS) {
      const ns = readName('the namespace');
      if (ns !== SERIALIZATION_NS && ns.length > 0) {
        // Tolerated: the namespace does not change the text.
      }
      continue;
    }
    if (record === CHARS8 || record === CHARS16 || record === CHARS32) {
      const width = record === CHARS8 ? 1 : record === CHARS16 ? 2 : 4;
      need(width, 'a text length');
      const len = width === 1 ? buf[i]! : width === 2 ? buf.readUInt16LE(i) : buf.readUInt32LE(i);
      i += width;
      need(len, 'the text');
      text += buf.toString('utf8', i, i + len);
      i += len;
      sawText = true;
      continue;
    }
    if (record === END_ELEMENT) {
      if (!sawText) throw new BodyError('MC-NBFX element has no text');
      return text;
    }
    throw new BodyError(`MC-NBFX record 0x${record.toString(16).padStart(2, '0')} is not supported`);
  }
}

/** Wraps text as Zaptec does (the simulator publishes with it). */
export function encodeNbfx(text: string): Buffer {
  const name = Buffer.from('string');
  const ns = Buffer.from(SERIALIZATION_NS);
  const body = Buffer.from(text, 'utf8');
  const head =
    body.length <= 0xff
      ? Buffer.from([CHARS8, body.length])
      : body.length <= 0xffff
        ? Buffer.from([CHARS16, body.length & 0xff, body.length >> 8])
        : (() => {
            const b = Buffer.alloc(5);
            b[0] = CHARS32;
            b.writeUInt32LE(body.length, 1);
            return b;
          })();
  return Buffer.concat([
    Buffer.from([SHORT_ELEMENT, name.length]),
    name,
    Buffer.from([SHORT_XMLNS, ns.length]),
    ns,
    head,
    body,
    Buffer.from([END_ELEMENT]),
  ]);
}
