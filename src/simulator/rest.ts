/**
 * A stand-in for api.zaptec.com on loopback: the payload shapes of zaptec-api.md §5, Zaptec's documented
 * limits (429 + Retry-After: 1), a 15 s cache on `/state`, and a log of every request it received.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimCommands } from './commands.js';
import {
  type Fleet,
  type SimCharger,
  type SimInstallation,
  type SimSession,
  zaptecTimestamp,
} from './fleet.js';
import { type SimLimits, TokenLimit, UserLimits, zaptecLimits } from './limits.js';

export interface SimRequest {
  at: number;
  method: string;
  path: string;
  query: string;
  status: number;
  /** Which Zaptec limit a 429 enforced. */
  limit?: string;
  userAgent: string | undefined;
  /** The Host header: which of several daemons asked, when each was given another name for this server. */
  host: string | undefined;
}

/** A planned misbehaviour: the next `times` requests matching `path` get this answer. */
export interface Fault {
  path: RegExp;
  status: number;
  /** Fixed headers, or headers made for the request's arrival time and path (a reset relative to it). */
  headers?: Record<string, string> | ((at: number, path: string) => Record<string, string>);
  body?: string;
  times: number;
  /** Hold the answer this long first (timeouts, slow servers). */
  delayMs?: number;
  /** Send the headers, then hold the body this long (a stalled body). */
  bodyDelayMs?: number;
  /** Send the body one byte at a time, this many ms apart (a body that trickles in). */
  trickleMs?: number;
}

export interface BrokerDetails {
  host: string;
  port: number;
  useSsl: boolean;
  /** Per installation: [SAS key name, key, topic, subscription]. */
  forInstallation(id: string): { keyName: string; key: string; topic: string; subscription: string };
  /** Per user group: the same, or the status its messagingConnectionDetails answer (403, 404). */
  forUserGroup?(id: string): { keyName: string; key: string; topic: string; subscription: string } | number;
}

export interface RestSimulatorOptions {
  fleet: Fleet;
  users?: { username: string; password: string }[];
  limits?: SimLimits;
  /** Seconds a token lives (`expires_in`). */
  tokenLifetimeS?: number;
  /** Zaptec's state cache; scaled with the limits. */
  stateCacheMs?: number;
  broker?: BrokerDetails;
  now?: () => number;
}

/**
 * The constants the simulator serves: Zaptec's own ids and names (checked against a real /api/constants by the
 * realdata tests) for every state it simulates, and for the session states the daemon reads (723, 981).
 */
const SIMULATED_STATES = {
  IsOcppConnected: -3,
  IsOnline: -2,
  Pulse: -1,
  CommunicationMode: 150,
  VoltagePhase1: 501,
  VoltagePhase2: 502,
  VoltagePhase3: 503,
  CurrentPhase1: 507,
  CurrentPhase2: 508,
  CurrentPhase3: 509,
  ChargerMaxCurrent: 510,
  TotalChargePower: 513,
  TotalChargePowerSession: 553,
  SignedMeterValue: 554,
  ChargerOperationMode: 710,
  FinalStopActive: 718,
  SessionIdentifier: 721,
  ChargerCurrentUserUuid: 722,
  CompletedSession: 723,
  InstallationId: 800,
} as const;

export const SIM_CONSTANTS = {
  Observations: { ...SIMULATED_STATES, TemperatureInternal6: 202, MIDPublicKey: 981 },
  Schema: {
    // 202 has another name on the Go; 981 exists on the Pro only.
    Smart: {
      DeviceType: 1,
      ObservationIds: { ...SIMULATED_STATES, TemperatureInternal6: 202, MIDPublicKey: 981 },
    },
    Apollo: { DeviceType: 4, ObservationIds: { ...SIMULATED_STATES, TemperatureEMeterPhase1: 202 } },
  },
  ChargerOperationModes: {
    Unknown: 0,
    Disconnected: 1,
    Connected_Requesting: 2,
    Connected_Charging: 3,
    Connected_Finished: 5,
  },
  Version: 'sim-2',
};

const GUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const ROUTES = {
  installations: /^\/api\/installation\/?$/,
  chargers: /^\/api\/chargers\/?$/,
  hierarchy: new RegExp(`^/api/installation/(${GUID})/hierarchy$`, 'i'),
  messaging: new RegExp(`^/api/installation/(${GUID})/messagingConnectionDetails$`, 'i'),
  groupMessaging: new RegExp(`^/api/userGroups/(${GUID})/messagingConnectionDetails$`, 'i'),
  installation: new RegExp(`^/api/installation/(${GUID})$`, 'i'),
  firmware: new RegExp(`^/api/chargerFirmware/installation/(${GUID})$`, 'i'),
  chargeHistory: /^\/api\/chargehistory$/i,
  state: new RegExp(`^/api/chargers/(${GUID})/state$`, 'i'),
  charger: new RegExp(`^/api/chargers/(${GUID})$`, 'i'),
};

export class RestSimulator {
  readonly fleet: Fleet;
  readonly requests: SimRequest[] = [];
  readonly faults: Fault[] = [];
  readonly #options: RestSimulatorOptions;
  readonly #tokens = new Map<string, { user: string; expiresAt: number }>();
  readonly #issued = new Set<string>();
  readonly #limits = new Map<string, UserLimits>();
  readonly #tokenLimit: TokenLimit;
  readonly #stateCache = new Map<string, { at: number; body: string }>();
  #server: Server | undefined;
  #now: () => number;
  url = '';
  /** Requests received and not yet answered in full. */
  inFlight = 0;
  /** The write endpoints (commands, installation updates), when the simulation provides them. */
  writes: SimCommands | undefined;

  constructor(options: RestSimulatorOptions) {
    this.fleet = options.fleet;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#tokenLimit = new TokenLimit(options.limits ?? zaptecLimits());
    this.users = options.users ?? [{ username: 'demo@example.com', password: 'demo-password' }];
  }

  /** The accounts it accepts (tests may change a password). */
  readonly users: { username: string; password: string }[];

  /** Answers 429 the simulator gave (a correct client causes none). */
  get rejected(): SimRequest[] {
    return this.requests.filter((r) => r.status === 429);
  }

  /** Every access token handed out so far (tests look for them where they must not be). */
  get issuedTokens(): string[] {
    return [...this.#issued];
  }

  /** Revokes every token: the next call with one gets 401 (token expiry mid-run). */
  expireTokens(): void {
    this.#tokens.clear();
  }

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    this.#server = createServer((req, res) => {
      this.inFlight++;
      res.once('close', () => this.inFlight--);
      this.#handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    this.#server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(port, host, () => resolve());
    });
    const addr = this.#server.address() as AddressInfo;
    this.url = `http://${host}:${addr.port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.#server = undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const body = await readBody(req);
    const at = this.#now();
    const entry: SimRequest = {
      at,
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      status: 0,
      userAgent: req.headers['user-agent'],
      host: req.headers.host,
    };
    this.requests.push(entry);
    const answer = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      const text =
        payload === undefined ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        date: new Date(at).toUTCString(),
        ...headers,
      });
      res.end(text);
    };
    const fault = this.faults.find((f) => f.times > 0 && f.path.test(url.pathname));
    if (fault) {
      fault.times--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      const headers = typeof fault.headers === 'function' ? fault.headers(at, url.pathname) : fault.headers;
      if (fault.bodyDelayMs || fault.trickleMs) return slowAnswer(res, fault, entry, headers);
      return answer(fault.status, fault.body ?? '', headers);
    }
    if (url.pathname === '/oauth/token' && req.method === 'POST') return this.#token(body, at, answer, entry);
    if (url.pathname === '/api/constants') return answer(200, SIM_CONSTANTS);
    const auth = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const session = auth ? this.#tokens.get(auth) : undefined;
    if (!session || session.expiresAt <= at) return answer(401, { Message: 'Authorization has been denied' });
    const isList =
      req.method === 'GET' && (ROUTES.installations.test(url.pathname) || ROUTES.chargers.test(url.pathname));
    let limits = this.#limits.get(session.user);
    if (!limits) {
      limits = new UserLimits(this.#options.limits ?? zaptecLimits());
      this.#limits.set(session.user, limits);
    }
    const broken = limits.admit(isList, at);
    if (broken) {
      entry.limit = broken;
      return answer(429, { Message: 'Too many requests' }, { 'retry-after': '1' });
    }
    if (req.method === 'POST') {
      const written = this.writes?.handle(url.pathname, body, at);
      if (written) return answer(written.status, written.payload);
    }
    if (req.method !== 'GET') return answer(405, { Message: 'not a method of this path' });
    return this.#route(url, at, answer);
  }

  #token(
    body: string,
    at: number,
    answer: (s: number, p?: unknown, h?: Record<string, string>) => void,
    entry: SimRequest,
  ) {
    if (!this.#tokenLimit.admit(at)) {
      entry.limit = 'token 1/s';
      return answer(429, { Message: 'Too many requests' }, { 'retry-after': '1' });
    }
    const form = new URLSearchParams(body);
    const user = this.users.find(
      (u) => u.username === form.get('username') && u.password === form.get('password'),
    );
    if (form.get('grant_type') !== 'password' || !user) {
      return answer(400, {
        error: 'invalid_grant',
        error_description: 'The user name or password is incorrect.',
      });
    }
    const token = randomBytes(24).toString('base64url');
    const lifetime = this.#options.tokenLifetimeS ?? 3600;
    this.#tokens.set(token, { user: user.username, expiresAt: at + lifetime * 1000 });
    this.#issued.add(token);
    return answer(200, { access_token: token, token_type: 'bearer', expires_in: lifetime, scope: 'openid' });
  }

  #route(url: URL, at: number, answer: (s: number, p?: unknown, h?: Record<string, string>) => void): void {
    const p = url.pathname;
    const page = <T>(items: T[]) => {
      const size = Math.max(1, Math.min(1000, Number(url.searchParams.get('PageSize') ?? 100) || 100));
      const index = Math.max(0, Number(url.searchParams.get('PageIndex') ?? 0) || 0);
      return {
        Pages: Math.ceil(items.length / size),
        Data: items.slice(index * size, index * size + size),
        Message: null,
      };
    };
    if (ROUTES.installations.test(p)) {
      return answer(
        200,
        page([...this.fleet.installations.values()].filter((i) => i.active).map((i) => installationModel(i))),
      );
    }
    if (ROUTES.chargers.test(p)) {
      const filter = url.searchParams.get('NameFilter')?.toLowerCase();
      const list = this.fleet
        .activeChargers()
        .filter(
          (c) =>
            !filter || c.name.toLowerCase().includes(filter) || c.deviceId.toLowerCase().includes(filter),
        );
      return answer(200, page(list.map((c) => this.#chargerModel(c, true))));
    }
    let m = ROUTES.hierarchy.exec(p);
    if (m) {
      const inst = this.fleet.installations.get(m[1]!.toLowerCase());
      if (!inst?.active || inst.hierarchy204) return answer(204);
      return answer(200, {
        Id: inst.id,
        Name: inst.name,
        NetworkType: 4,
        Circuits: inst.circuits.map((c) => ({
          Id: c.id,
          Name: c.name,
          MaxCurrent: c.maxCurrent,
          IsActive: true,
          InstallationId: inst.id,
          Chargers: this.fleet
            .activeChargers()
            .filter((ch) => ch.circuitId === c.id)
            .map((ch) => ({
              Id: ch.id,
              DeviceId: ch.deviceId,
              MID: ch.deviceId,
              Name: ch.name,
              Active: true,
              DeviceType: ch.deviceType,
            })),
        })),
      });
    }
    m = ROUTES.messaging.exec(p);
    if (m) {
      const inst = this.fleet.installations.get(m[1]!.toLowerCase());
      const broker = this.#options.broker;
      if (!inst?.active) return answer(403, { Message: 'forbidden' });
      if (!broker || !inst.messagingEnabled)
        return answer(400, { Code: 527, Details: 'Messaging is not enabled' });
      return answer(200, connectionDescriptor(broker, broker.forInstallation(inst.id)));
    }
    m = ROUTES.groupMessaging.exec(p);
    if (m) {
      const broker = this.#options.broker;
      const d = broker?.forUserGroup?.(m[1]!.toLowerCase()) ?? 404;
      if (typeof d === 'number' || !broker)
        return answer(d === 403 ? 403 : 404, { Message: d === 403 ? 'forbidden' : 'not found' });
      return answer(200, connectionDescriptor(broker, d));
    }
    m = ROUTES.firmware.exec(p);
    if (m) {
      // What Home Assistant reads daily (zaptec-api.md §2): one entry per charger of the installation.
      const inst = this.fleet.installations.get(m[1]!.toLowerCase());
      if (!inst?.active) return answer(403, { Message: 'forbidden' });
      return answer(
        200,
        this.fleet
          .activeChargers()
          .filter((c) => c.installationId === inst.id)
          .map((c) => ({
            ChargerId: c.id,
            DeviceType: c.deviceType,
            IsOnline: c.state.get(-2)?.value !== '0',
            CurrentVersion: c.deviceType === 4 ? '2.3.1.2' : '5.3.0.3',
            AvailableVersion: c.deviceType === 4 ? '2.3.1.2' : '5.3.0.3',
            IsUpToDate: true,
          })),
      );
    }
    if (ROUTES.chargeHistory.test(p)) {
      // Zaptec's paging (PageSize at most 100 since 2025-03-01), filtered by installation and session end.
      const q = url.searchParams;
      const size = Number(q.get('PageSize') ?? 50);
      if (!Number.isInteger(size) || size < 1 || size > 100)
        return answer(400, { Code: 400, Details: 'PageSize must be from 1 to 100' });
      const inst = q.get('InstallationId')?.toLowerCase();
      if (inst && !this.fleet.installations.get(inst)?.active) return answer(403, { Message: 'forbidden' });
      const from = q.get('From') ? Date.parse(q.get('From')!) : Number.NEGATIVE_INFINITY;
      const to = q.get('To') ? Date.parse(q.get('To')!) : Number.POSITIVE_INFINITY;
      const details = (Number(q.get('DetailLevel') ?? 0) & 1) === 1;
      const items = this.fleet.sessions
        .filter(
          (x) =>
            (!inst || x.installationId === inst) && x.endedAt >= from && x.endedAt < to && x.endedAt <= at,
        )
        .map((x) => chargeHistoryItem(x, details));
      return answer(200, page(items));
    }
    m = ROUTES.installation.exec(p);
    if (m) {
      const inst = this.fleet.installations.get(m[1]!.toLowerCase());
      return inst?.active ? answer(200, installationModel(inst)) : answer(403, { Message: 'forbidden' });
    }
    m = ROUTES.state.exec(p);
    if (m) {
      const c = this.fleet.chargers.get(m[1]!.toLowerCase());
      if (!c?.active) return answer(404, { Message: 'not found' });
      const cacheMs = this.#options.stateCacheMs ?? 15_000;
      const cached = this.#stateCache.get(c.id);
      if (cached && at - cached.at < cacheMs) return answer(200, cached.body);
      const body = JSON.stringify(
        [...c.state.entries()].map(([id, s]) => ({
          ChargerId: c.id,
          StateId: id,
          Timestamp: zaptecTimestamp(s.at),
          ...(s.value === null ? {} : { ValueAsString: s.value }),
        })),
      );
      this.#stateCache.set(c.id, { at, body });
      return answer(200, body);
    }
    m = ROUTES.charger.exec(p);
    if (m) {
      const c = this.fleet.chargers.get(m[1]!.toLowerCase());
      return c?.active ? answer(200, this.#chargerModel(c, false)) : answer(404, { Message: 'not found' });
    }
    return answer(404, { Message: `no route ${p}` });
  }

  #chargerModel(c: SimCharger, list: boolean): Record<string, unknown> {
    const inst = c.installationId ? this.fleet.installations.get(c.installationId) : undefined;
    return {
      ...(list
        ? { OperatingMode: Number(c.state.get(710)?.value ?? 1), IsOnline: c.state.get(-2)?.value === '1' }
        : {}),
      Id: c.id,
      MID: c.deviceId,
      DeviceId: c.deviceId,
      SerialNo: 'Zaptec',
      Name: c.name,
      CreatedOnDate: '2022-09-16T08:06:10.487',
      CircuitId: c.circuitId,
      Active: true,
      CurrentUserRoles: 3,
      DeviceType: c.deviceType,
      InstallationName: inst?.name ?? null,
      InstallationId: c.installationId,
      AuthenticationType: 0,
      IsAuthorizationRequired: false,
    };
  }
}

/** A ConnectionDescriptor (sessions.md B1): the same shape for an installation and a user group. */
function connectionDescriptor(
  broker: BrokerDetails,
  d: { keyName: string; key: string; topic: string; subscription: string },
) {
  return {
    Type: 0,
    Host: broker.host,
    Port: broker.port,
    UseSSL: broker.useSsl,
    Username: d.keyName,
    Password: d.key,
    Topic: d.topic,
    Subscription: d.subscription,
  };
}

function installationModel(i: SimInstallation) {
  const phases = Array.isArray(i.availableCurrent) ? i.availableCurrent : undefined;
  return {
    Id: i.id,
    Name: i.name,
    InstallationType: 0,
    MaxCurrent: i.maxCurrent,
    AvailableCurrent: phases ? null : i.availableCurrent,
    AvailableCurrentPhase1: phases?.[0] ?? null,
    AvailableCurrentPhase2: phases?.[1] ?? null,
    AvailableCurrentPhase3: phases?.[2] ?? null,
    AvailableCurrentMode: i.apm ? 2 : 0,
    Active: i.active,
    NetworkType: 4,
    CurrentUserRoles: 3,
    AuthenticationType: 0,
    MessagingEnabled: i.messagingEnabled,
    CreatedOnDate: '2022-09-16T08:06:10.217',
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      data += d;
      if (data.length > 1_000_000) req.destroy();
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

/** A fault's answer whose body stalls or trickles; gives up quietly when the client hangs up. */
async function slowAnswer(
  res: ServerResponse,
  fault: Fault,
  entry: SimRequest,
  headers: Record<string, string> = {},
): Promise<void> {
  entry.status = fault.status;
  const body = Buffer.from(fault.body ?? '{}');
  res.writeHead(fault.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.length),
    ...headers,
  });
  res.flushHeaders();
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  if (fault.bodyDelayMs) await pause(fault.bodyDelayMs);
  for (let i = 0; fault.trickleMs && i < body.length && !res.destroyed; i++) {
    res.write(body.subarray(i, i + 1));
    await pause(fault.trickleMs);
  }
  if (!res.destroyed) res.end(fault.trickleMs ? undefined : body);
}

/**
 * A session as `GET /api/chargehistory` lists it (sessions.md §A3, the real Pro MID item): PascalCase, times in
 * UTC without an offset, `CommitMetadata` flags (1 Online, 4 ReliableClock, 16 Signed), the user who charged,
 * and with `DetailLevel=1` the energy per quarter hour as deltas that add up to `Energy`, stamped `+00:00`.
 */
function chargeHistoryItem(s: SimSession, details: boolean): Record<string, unknown> {
  const user = `a0${s.chargerId.slice(2)}`;
  return {
    Id: s.id,
    DeviceId: s.deviceId,
    StartDateTime: zaptecTimestamp(s.startedAt),
    EndDateTime: zaptecTimestamp(s.endedAt),
    Energy: s.energyKwh,
    CommitMetadata: 1 | 4 | (s.signed ? 16 : 0),
    CommitEndDateTime: zaptecTimestamp(s.endedAt),
    UserFullName: `Driver ${s.deviceId}`,
    ChargerId: s.chargerId,
    DeviceName: s.deviceName,
    UserEmail: `driver.${s.deviceId.toLowerCase()}@example.com`,
    UserId: user,
    TokenName: s.authenticationCode ? `Tag ${s.authenticationCode}` : null,
    ExternallyEnded: false,
    ...(details ? { EnergyDetails: energyDetails(s) } : {}),
    ChargerFirmwareVersion: s.signed
      ? { Major: 5, Minor: 0, Build: 7, Revision: 2, MajorRevision: 0, MinorRevision: 2 }
      : { Major: 2, Minor: 3, Build: 1, Revision: 2, MajorRevision: 0, MinorRevision: 2 },
    SignedSession: s.signedSession,
  };
}

function energyDetails(s: SimSession): { Timestamp: string; Energy: number }[] {
  const quarter = 15 * 60_000;
  const stamp = (t: number) => new Date(t).toISOString().replace('Z', '+00:00');
  const points = [s.startedAt];
  for (let t = Math.floor(s.startedAt / quarter) * quarter + quarter; t < s.endedAt; t += quarter)
    points.push(t);
  points.push(s.endedAt);
  const span = s.endedAt - s.startedAt || 1;
  const out = [{ Timestamp: stamp(s.startedAt), Energy: 0 }];
  let given = 0;
  for (let i = 1; i < points.length; i++) {
    const last = i === points.length - 1;
    const share = last
      ? s.energyKwh - given
      : Number(((s.energyKwh * (points[i]! - points[i - 1]!)) / span).toFixed(3));
    given += share;
    out.push({ Timestamp: stamp(points[i]!), Energy: Number(share.toFixed(3)) });
  }
  return out;
}
