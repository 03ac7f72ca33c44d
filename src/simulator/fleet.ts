/**
 * The simulated fleet: installations with circuits and chargers, each charger holding its state the
 * way Zaptec's cloud does. Deterministic for a seed.
 */
import { type KeyObject, sign } from 'node:crypto';
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
  readonly random: Random;
  #serial = 0;
  #deviceTypes: number[];

  constructor(options: FleetOptions) {
    this.random = seededRandom(options.seed ?? 1);
    this.#deviceTypes = options.deviceTypes ?? [4];
    const now = options.now ?? Date.now();
    for (let i = 0; i < options.installations; i++) {
      const inst = this.addInstallation(`Installation ${i + 1}`);
      for (let c = 0; c < options.chargersPerInstallation; c++) this.addCharger(inst.id, now);
    }
    for (let s = 0; s < (options.standaloneChargers ?? 0); s++) this.addCharger(null, now);
  }

  addInstallation(name: string): SimInstallation {
    const inst: SimInstallation = {
      id: guid(this.random),
      name,
      active: true,
      messagingEnabled: true,
      hierarchy204: false,
      circuits: [{ id: guid(this.random), name: 'Charge circuit', maxCurrent: 32 }],
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

  activeChargers(): SimCharger[] {
    return [...this.chargers.values()].filter((c) => c.active);
  }
}

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
 * with six fractional digits, and the charger's unsigned OCMF with its begin and end readings.
 */
export function completedSession(o: {
  sessionId: string;
  serial: string;
  startedAt: number;
  endedAt: number;
  meterStartKwh: number;
  energyKwh: number;
}): string {
  const micros = (t: number) => new Date(t).toISOString().replace(/Z$/, '000Z');
  const readings = [
    ocmfReading(o.meterStartKwh, o.startedAt, 'B'),
    ocmfReading(o.meterStartKwh + o.energyKwh, o.endedAt, 'E'),
  ];
  return JSON.stringify({
    SessionId: o.sessionId,
    Energy: Number(o.energyKwh.toFixed(3)),
    StartDateTime: micros(o.startedAt),
    EndDateTime: micros(o.endedAt),
    ReliableClock: true,
    StoppedByRFID: false,
    AuthenticationCode: '',
    SignedSession: `OCMF|${JSON.stringify({ ...ocmfHeader(o.serial), RD: readings })}`,
  });
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
  const payload = ocmfText.split('|')[1] ?? '';
  const sd = sign('sha256', Buffer.from(payload, 'utf8'), { key: privateKey, dsaEncoding: 'der' }).toString(
    'base64',
  );
  return `OCMF|${payload}|${JSON.stringify({ SA: 'ECDSA-secp384r1-SHA256', SE: 'base64', SD: sd })}`;
}
