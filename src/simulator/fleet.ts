/**
 * The simulated fleet: installations with circuits and chargers, each charger holding its state the
 * way Zaptec's cloud does. Deterministic for a seed.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { guid, type Random, seededRandom } from './random.js';

export interface SimState {
  value: string | null;
  /** Zaptec's timestamp, epoch ms. */
  at: number;
}

export interface SimCharger {
  id: string;
  deviceId: string;
  name: string;
  deviceType: number;
  installationId: string | null;
  circuitId: string | null;
  active: boolean;
  state: Map<number, SimState>;
}

export interface SimInstallation {
  id: string;
  name: string;
  active: boolean;
  messagingEnabled: boolean;
  /** Answer the hierarchy with 204, as Zaptec does while provisioning or without access. */
  hierarchy204: boolean;
  circuits: { id: string; name: string; maxCurrent: number }[];
  /** MaxCurrent (A). */
  maxCurrent: number;
  /** Its available current as last set (one value, or per phase). */
  availableCurrent: number | [number, number, number];
  /** Zaptec Sense / APM manages it: updates are refused with 527. */
  apm: boolean;
}

export interface FleetOptions {
  installations: number;
  chargersPerInstallation: number;
  /** Device types to cycle through: 4 = Go (Apollo), 1 = Pro (Smart). */
  deviceTypes?: number[];
  /** Chargers visible in the list but under no visible installation. */
  standaloneChargers?: number;
  seed?: number;
  now?: number;
  /**
   * Days of completed sessions each charger already has in its charge history when the fleet starts (one or
   * two a day), so that a first start's backfill finds them, with EnergyDetails (`demo`: 3; default 0).
   */
  pastDays?: number;
}

/** A completed session as the charge history shows it (sessions.md §A3), with its 723 value. */
export interface SimSession {
  id: string;
  chargerId: string;
  installationId: string;
  deviceId: string;
  deviceName: string;
  startedAt: number;
  endedAt: number;
  energyKwh: number;
  meterStartKwh: number;
  signedSession: string;
  signed: boolean;
  authenticationCode: string;
  /** The 723 `CompletedSession` value. */
  completed: string;
}

/** The observation change a charger makes, for publishing. */
export interface SimObservation {
  chargerId: string;
  deviceId: string;
  deviceType: number;
  stateId: number;
  value: string | null;
  at: number;
}

export class Fleet {
  readonly installations = new Map<string, SimInstallation>();
  readonly chargers = new Map<string, SimCharger>();
  /** Completed sessions, oldest first: what `/api/chargehistory` serves. */
  readonly sessions: SimSession[] = [];
  /** MID chargers' signing keys (Pro MID: device type 1); their public key is observation 981. */
  readonly #midKeys = new Map<string, KeyObject>();
  readonly random: Random;
  #serial = 0;
  #deviceTypes: number[];

  readonly #seed: number;

  constructor(options: FleetOptions) {
    this.#seed = options.seed ?? 1;
    this.random = seededRandom(this.#seed);
    this.#deviceTypes = options.deviceTypes ?? [4];
    const now = options.now ?? Date.now();
    for (let i = 0; i < options.installations; i++) {
      const inst = this.addInstallation(`Installation ${i + 1}`);
      for (let c = 0; c < options.chargersPerInstallation; c++) this.addCharger(inst.id, now);
    }
    for (let s = 0; s < (options.standaloneChargers ?? 0); s++) this.addCharger(null, now);
    if (options.pastDays) this.#pastSessions(options.pastDays, now);
  }

  /**
   * Sessions of the last `days` whole days, from a random stream of their own (the fleet's live life stays as it
   * is for a seed). Same seed, same day: the same sessions, with the same ids.
   */
  #pastSessions(days: number, now: number): void {
    const random = seededRandom(this.#seed + 0x5e55);
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    for (const c of this.chargers.values()) {
      if (!c.installationId) continue;
      let meter = 100 + Math.round(random() * 400);
      for (let d = days; d >= 1; d--) {
        const sessions = 1 + Math.floor(random() * 2);
        for (let k = 0; k < sessions; k++) {
          const startedAt = today - d * DAY_MS + (7 + k * 8 + random() * 5) * HOUR_MS;
          const endedAt = startedAt + (1 + random() * 3) * HOUR_MS;
          const energyKwh = 3 + random() * 25;
          const id = createHash('sha256').update(`${this.#seed} ${c.id} ${startedAt}`).digest('hex');
          this.completeSession({
            chargerId: c.id,
            sessionId: `${id.slice(0, 8)}-${id.slice(8, 12)}-4${id.slice(13, 16)}-8${id.slice(17, 20)}-${id.slice(20, 32)}`,
            startedAt: Math.round(startedAt),
            endedAt: Math.round(endedAt),
            meterStartKwh: meter,
            energyKwh,
          });
          meter += energyKwh;
        }
      }
    }
    this.sessions.sort((a, b) => a.endedAt - b.endedAt);
  }

  addInstallation(name: string): SimInstallation {
    const inst: SimInstallation = {
      id: guid(this.random),
      name,
      active: true,
      messagingEnabled: true,
      hierarchy204: false,
      circuits: [{ id: guid(this.random), name: 'Charge circuit', maxCurrent: 32 }],
      maxCurrent: 32,
      availableCurrent: 32,
      apm: false,
    };
    this.installations.set(inst.id, inst);
    return inst;
  }

  addCharger(installationId: string | null, now: number): SimCharger {
    const n = ++this.#serial;
    const deviceType = this.#deviceTypes[(n - 1) % this.#deviceTypes.length]!;
    const prefix = deviceType === 1 ? 'ZPR' : 'ZAP';
    const inst = installationId ? this.installations.get(installationId) : undefined;
    const charger: SimCharger = {
      id: guid(this.random),
      deviceId: `${prefix}${String(n).padStart(6, '0')}`,
      name: `Charger ${n}`,
      deviceType,
      installationId,
      circuitId: inst?.circuits[0]?.id ?? null,
      active: true,
      state: new Map(),
    };
    const base = now - 3_600_000;
    const initial: [number, string | null][] = [
      [-2, '1'],
      [-1, null],
      [150, 'Wifi'],
      [501, '230.000'],
      [502, '230.000'],
      [503, '230.000'],
      [507, '0.000'],
      [508, '0.000'],
      [509, '0.000'],
      [510, '32.000'],
      [513, '0'],
      [553, '0.000'],
      [554, ocmf(charger.deviceId, 1000 + n, base)],
      [710, '1'],
      [718, '0'],
      [721, ''],
      [722, null],
      [800, installationId ?? ''],
    ];
    for (const [id, value] of initial) charger.state.set(id, { value, at: base });
    if (deviceType === 1) {
      const { privateKey, publicKey } = midKeyPair(this.#seed, charger.id);
      this.#midKeys.set(charger.id, privateKey);
      const der = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
      charger.state.set(981, { value: der, at: base });
    }
    this.chargers.set(charger.id, charger);
    return charger;
  }

  removeCharger(id: string): void {
    const c = this.chargers.get(id);
    if (c) c.active = false;
  }

  /** Changes a state and returns the observation, as the charger reports it. */
  set(chargerId: string, stateId: number, value: string | null, at: number): SimObservation {
    const c = this.chargers.get(chargerId);
    if (!c) throw new Error(`no charger ${chargerId}`);
    c.state.set(stateId, { value, at });
    return { chargerId, deviceId: c.deviceId, deviceType: c.deviceType, stateId, value, at };
  }

  /**
   * A session ends: its 723 value (signed by a MID charger) is returned for publishing and the session is kept
   * for the charge history.
   */
  completeSession(o: {
    chargerId: string;
    sessionId: string;
    startedAt: number;
    endedAt: number;
    meterStartKwh: number;
    energyKwh: number;
    authenticationCode?: string;
  }): SimSession {
    const c = this.chargers.get(o.chargerId);
    if (!c) throw new Error(`no charger ${o.chargerId}`);
    const key = this.#midKeys.get(c.id);
    const completed = completedSession({
      ...o,
      serial: c.deviceId,
      deviceType: c.deviceType,
      ...(key ? { sign: key } : {}),
    });
    const session: SimSession = {
      id: o.sessionId.toLowerCase(),
      chargerId: c.id,
      installationId: c.installationId ?? '',
      deviceId: c.deviceId,
      deviceName: c.name,
      startedAt: o.startedAt,
      endedAt: o.endedAt,
      energyKwh: Number(o.energyKwh.toFixed(3)),
      meterStartKwh: o.meterStartKwh,
      signedSession: (JSON.parse(completed) as { SignedSession: string }).SignedSession,
      signed: key !== undefined,
      authenticationCode: o.authenticationCode ?? '',
      completed,
    };
    this.sessions.push(session);
    return session;
  }

  activeChargers(): SimCharger[] {
    return [...this.chargers.values()].filter((c) => c.active);
  }
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The OCMF signed meter value (554) of a Go: the lifetime register in kWh. */
export function ocmf(serial: string, kwh: number, at: number): string {
  return `OCMF|${JSON.stringify({ ...ocmfHeader(serial), RD: [ocmfReading(kwh, at)] })}`;
}

/** A Go's OCMF header (no signature section: the Go is not MID-certified). */
function ocmfHeader(serial: string) {
  return { FV: '1.0', GI: 'ZAPTEC GO', GS: serial, GV: '2.3.1.2', PG: 'T1' };
}

/** One OCMF reading: `TM` with a comma decimal and the clock status letter, as Zaptec's firmware writes it. */
function ocmfReading(kwh: number, at: number, tx?: 'B' | 'T' | 'E') {
  const tm = new Date(at).toISOString().replace(/\.(\d{3})Z$/, ',$1+00:00 R');
  return {
    TM: tm,
    ...(tx ? { TX: tx } : {}),
    RV: Number(kwh.toFixed(3)),
    RI: '1-0:1.8.0',
    RU: 'kWh',
    RT: 'AC',
    ST: 'G',
  };
}

/**
 * A completed session's 723 value with Zaptec's field set (sessions.md §A): a GUID `SessionId`, times in UTC
 * with six fractional digits, and the charger's OCMF with its begin and end readings; a MID charger (Pro MID)
 * names the session in `ZS` and signs the payload.
 */
export function completedSession(o: {
  sessionId: string;
  serial: string;
  startedAt: number;
  endedAt: number;
  meterStartKwh: number;
  energyKwh: number;
  deviceType?: number;
  authenticationCode?: string;
  sign?: KeyObject;
}): string {
  const micros = (t: number) => new Date(t).toISOString().replace(/Z$/, '000Z');
  // Zaptec floors or ceils the energy to 3 decimals so that it equals E − B (sessions.md §A1).
  const start = Number(o.meterStartKwh.toFixed(3));
  const end = Number((start + Number(o.energyKwh.toFixed(3))).toFixed(3));
  const readings = [ocmfReading(start, o.startedAt, 'B'), ocmfReading(end, o.endedAt, 'E')];
  const header = o.sign
    ? { FV: '1.0', GI: 'Zaptec Pro MID', GS: o.serial, GV: '5.0.7.2', PG: 'T1', MF: 'v1.3.6', IS: false }
    : ocmfHeader(o.serial);
  const unsigned = `OCMF|${JSON.stringify({ ...header, RD: readings, ...(o.sign ? { ZS: o.sessionId } : {}) })}`;
  return JSON.stringify({
    SessionId: o.sessionId,
    Energy: Number((end - start).toFixed(3)),
    StartDateTime: micros(o.startedAt),
    EndDateTime: micros(o.endedAt),
    ReliableClock: true,
    StoppedByRFID: false,
    AuthenticationCode: o.authenticationCode ?? '',
    SignedSession: o.sign ? signOcmf(unsigned, o.sign) : unsigned,
  });
}

/**
 * A MID charger's P-384 signing key, the same for a seed and a charger every time: a second `demo` over the
 * database the first one left must find the sessions it stored still valid against the charger's 981 key.
 * The private scalar is a hash of the seed and the charger (reduced below the curve's order by ECDH's own
 * check, which a SHA-384 value passes but with a chance of 2^-190); the public point comes from ECDH.
 */
export function midKeyPair(seed: number, chargerId: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const ecdh = createECDH('secp384r1');
  ecdh.setPrivateKey(
    createHash('sha384').update(`zaptec-sync simulator MID key ${seed} ${chargerId}`).digest(),
  );
  const point = ecdh.getPublicKey();
  const size = (point.length - 1) / 2;
  const jwk = {
    kty: 'EC',
    crv: 'P-384',
    x: point.subarray(1, 1 + size).toString('base64url'),
    y: point.subarray(1 + size).toString('base64url'),
  };
  return {
    privateKey: createPrivateKey({
      key: { ...jwk, d: ecdh.getPrivateKey().toString('base64url') },
      format: 'jwk',
    }),
    publicKey: createPublicKey({ key: jwk, format: 'jwk' }),
  };
}

/** Zaptec writes REST timestamps without an offset, with up to 3 fractional digits. */
export function zaptecTimestamp(at: number): string {
  return new Date(at).toISOString().replace(/Z$/, '');
}

/**
 * Signs an OCMF string as a MID charger does (Pro MID, Go+): the payload section as it stands, ECDSA P-384
 * over SHA-256, the DER signature in base64, appended as the third section.
 */
export function signOcmf(ocmfText: string, privateKey: KeyObject): string {
  const payload = ocmfText.slice(ocmfText.indexOf('|') + 1);
  const sd = sign('sha256', Buffer.from(payload, 'utf8'), { key: privateKey, dsaEncoding: 'der' }).toString(
    'base64',
  );
  return `OCMF|${payload}|${JSON.stringify({ SA: 'ECDSA-secp384r1-SHA256', SE: 'base64', SD: sd })}`;
}
