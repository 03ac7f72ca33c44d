/**
 * The two ways Zaptec hands over observations, side by side: a Service Bus message body, and a
 * `/api/chargers/{id}/state` answer (`toObservations`).
 *
 * A Service Bus message body to an observation. Bodies come as MC-NBFX-wrapped JSON (what Zaptec sends),
 * a JSON data section (the SDK hands over a parsed object), a Buffer of JSON, or a string. Anything that
 * cannot become an observation is a typed error with a reason, for the dead-letter queue.
 */
import type { Observation } from '../observation.js';
import { parseZaptecTime } from '../time.js';
import { BodyError, decodeNbfx, isNbfx } from './nbfx.js';
import type { ApiObservation } from './schemas.js';

export { BodyError } from './nbfx.js';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function toJson(body: unknown): unknown {
  if (body instanceof Uint8Array) {
    const text = isNbfx(body) ? decodeNbfx(body) : Buffer.from(body).toString('utf8');
    return parseText(text);
  }
  if (typeof body === 'string') return parseText(body);
  if (body && typeof body === 'object' && !Array.isArray(body)) return body;
  throw new BodyError(
    `body is ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}, not an observation`,
  );
}

function parseText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError('body is not JSON');
  }
}

/** The observation in a message body; throws BodyError with the reason when there is none. */
export function decodeObservation(body: unknown): Observation {
  const json = toJson(body) as Record<string, unknown>;
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new BodyError('body is not a JSON object');
  const { ChargerId, StateId, Timestamp } = json;
  if (typeof ChargerId !== 'string' || !GUID.test(ChargerId))
    throw new BodyError('ChargerId is missing or not a GUID');
  const stateId =
    typeof StateId === 'number'
      ? StateId
      : typeof StateId === 'string' && /^-?\d+$/.test(StateId)
        ? Number(StateId)
        : NaN;
  if (!Number.isInteger(stateId)) throw new BodyError('StateId is missing or not an integer');
  if (typeof Timestamp !== 'string') throw new BodyError('Timestamp is missing');
  const observedAt = parseZaptecTime(Timestamp);
  if (observedAt === undefined) throw new BodyError('Timestamp is not a time');
  const raw = json.ValueAsString ?? json.Value;
  const value =
    raw === undefined || raw === null ? null : typeof raw === 'string' ? raw : JSON.stringify(raw);
  const deviceType = typeof json.DeviceType === 'number' ? json.DeviceType : undefined;
  return { chargerId: ChargerId.toLowerCase(), stateId, value, observedAt, source: 'event', deviceType };
}

/** A `/state` answer to observations; items whose time cannot be read are left out. */
export function toObservations(items: ApiObservation[], source: Observation['source']): Observation[] {
  const out: Observation[] = [];
  for (const o of items) {
    const at = parseZaptecTime(o.Timestamp);
    if (at === undefined) continue;
    out.push({
      chargerId: o.ChargerId.toLowerCase(),
      stateId: o.StateId,
      value: o.ValueAsString ?? null,
      observedAt: at,
      source,
    });
  }
  return out;
}
