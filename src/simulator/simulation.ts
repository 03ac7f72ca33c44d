/**
 * The local Zaptec cloud: a fleet, the REST API with Zaptec's limits, and a Service Bus broker with one
 * topic subscription per installation and one per user group (carrying all its installations' events),
 * publishing observations the way Zaptec does (MC-NBFX-wrapped JSON in a binary data section, with a
 * message id).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { NULL_CHARGER_ID } from '../observation.js';
import { type Clock, every, quietAbortController, systemClock } from '../time.js';
import { encodeNbfx } from '../zaptec/nbfx.js';
import { ServiceBusBroker } from './broker.js';
import { SimCommands } from './commands.js';
import { Fleet, type FleetOptions, type SimObservation } from './fleet.js';
import { FleetLife, type LifeOptions } from './life.js';
import type { SimLimits } from './limits.js';
import { PatternLife, type SessionPattern } from './patterns.js';
import { guid } from './random.js';
import { RestSimulator } from './rest.js';

export interface SimulationOptions {
  fleet: FleetOptions;
  limits?: SimLimits;
  lockDurationMs?: number;
  tokenLifetimeS?: number;
  /**
   * The clock of the REST API (tokens, the 15 s cache, the limits' windows) and of the fleet's life; the
   * system clock by default. The broker keeps real time: the Service Bus SDK signs its SAS tokens and renews
   * message locks on real time.
   */
  clock?: Clock;
}

export interface InstallationChannel {
  topic: string;
  subscription: string;
  keyName: string;
  key: string;
}

/** A user group (sessions.md B1): one topic that carries the events of all its installations. */
export interface UserGroup {
  id: string;
  installations: Set<string>;
  channel: InstallationChannel;
  /** What its messagingConnectionDetails answer: 200, or 403/404 (no access, no such group). */
  status: 200 | 403 | 404;
}

export class Simulation {
  readonly fleet: Fleet;
  readonly rest: RestSimulator;
  readonly broker: ServiceBusBroker;
  readonly #channels = new Map<string, InstallationChannel>();
  readonly userGroups = new Map<string, UserGroup>();
  readonly #clock: Clock;
  readonly #life = quietAbortController();
  /** Observations published, by time. */
  published = 0;
  /** Told of every observation published (the simulation harness keeps what must end up stored). */
  onPublish: ((o: SimObservation) => void) | undefined;

  constructor(options: SimulationOptions) {
    this.#clock = options.clock ?? systemClock;
    this.fleet = new Fleet({ now: this.#clock.now(), ...options.fleet });
    const broker = new ServiceBusBroker({ lockDurationMs: options.lockDurationMs ?? 30_000 });
    this.broker = broker;
    this.rest = new RestSimulator({
      fleet: this.fleet,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.tokenLifetimeS ? { tokenLifetimeS: options.tokenLifetimeS } : {}),
      now: () => this.#clock.now(),
      broker: {
        host: '127.0.0.1',
        get port() {
          return broker.port;
        },
        useSsl: false,
        forInstallation: (id) => this.channel(id),
        forUserGroup: (id) => {
          const g = this.userGroups.get(id);
          return g?.status === 200 ? g.channel : (g?.status ?? 404);
        },
      },
    });
    this.commands = new SimCommands(this.fleet, {
      publish: (o) => this.publish(o),
      later: (ms, fn) => {
        void this.#clock.sleep(ms, this.#life.signal).then(() => {
          if (!this.#life.signal.aborted) fn();
        });
      },
    });
    this.rest.writes = this.commands;
  }

  /** The write endpoints: charger commands and installation updates, as Zaptec answers them. */
  readonly commands: SimCommands;

  /** The topic, subscription and key of an installation (made on first use). */
  channel(installationId: string): InstallationChannel {
    let c = this.#channels.get(installationId);
    if (!c) {
      const short = installationId.slice(0, 8);
      c = {
        topic: `installation-${short}`,
        subscription: `zaptec-sync-${short}`,
        keyName: `listen-${short}`,
        key: randomBytes(32).toString('base64'),
      };
      this.#channels.set(installationId, c);
      this.broker.setKey(c.keyName, c.key);
      this.broker.createSubscription(c.topic, c.subscription, c.keyName);
    }
    return c;
  }

  /**
   * A user group carrying these installations (all of the fleet's by default): its own topic, subscription
   * and key, and every observation of its installations published there too. Returns its id.
   */
  addUserGroup(installationIds: readonly string[] = [...this.fleet.installations.keys()]): string {
    const id = guid(this.fleet.random);
    const short = id.slice(0, 8);
    const channel: InstallationChannel = {
      topic: `usergroup-${short}`,
      subscription: `zaptec-sync-${short}`,
      keyName: `listen-group-${short}`,
      key: randomBytes(32).toString('base64'),
    };
    this.broker.setKey(channel.keyName, channel.key);
    this.broker.createSubscription(channel.topic, channel.subscription, channel.keyName);
    this.userGroups.set(id, { id, installations: new Set(installationIds), channel, status: 200 });
    return id;
  }

  /** A new SAS key for the installation, or for a user group: the broker refuses the old one from now on. */
  rotateKey(installationOrGroupId: string): void {
    const c = this.userGroups.get(installationOrGroupId)?.channel ?? this.channel(installationOrGroupId);
    c.key = randomBytes(32).toString('base64');
    this.broker.rotateKey(c.keyName, c.key);
  }

  /** The topics an installation's observations go to: its own, and those of the user groups that carry it. */
  #topics(installationId: string): string[] {
    const topics = [this.channel(installationId).topic];
    for (const g of this.userGroups.values())
      if (g.installations.has(installationId)) topics.push(g.channel.topic);
    return topics;
  }

  async start(ports: { rest?: number; broker?: number } = {}): Promise<void> {
    for (const id of this.fleet.installations.keys()) this.channel(id);
    await this.broker.start(ports.broker ?? 0);
    await this.rest.start(ports.rest ?? 0);
  }

  async stop(): Promise<void> {
    this.#life.abort();
    await this.rest.stop();
    await this.broker.stop();
  }

  /** The environment that points `zaptec-sync run` at this simulation (and its user groups, if any). */
  env(): Record<string, string> {
    const user = this.rest.users[0]!;
    return {
      ZAPTEC_API_URL: this.rest.url,
      ZAPTEC_USERNAME: user.username,
      ZAPTEC_PASSWORD: user.password,
      ZAPTEC_SERVICEBUS_ENDPOINT: `amqp://127.0.0.1:${this.broker.port}`,
      ...(this.userGroups.size > 0 ? { ZAPTEC_USER_GROUPS: [...this.userGroups.keys()].join(',') } : {}),
    };
  }

  /** Publishes one observation on its installation's topic, as Zaptec does. */
  publish(o: SimObservation, options: { messageId?: string; raw?: Buffer | string } = {}): void {
    const charger = this.fleet.chargers.get(o.chargerId);
    const installationId = charger?.installationId;
    if (!installationId) return;
    const body =
      options.raw ??
      encodeNbfx(
        JSON.stringify({
          DeviceId: o.deviceId,
          DeviceType: o.deviceType,
          ChargerId: o.chargerId,
          StateId: o.stateId,
          Timestamp: new Date(o.at).toISOString(),
          ...(o.value === null ? {} : { ValueAsString: o.value }),
        }),
      );
    const messageId = options.messageId ?? randomUUID();
    for (const topic of this.#topics(installationId)) this.broker.publish(topic, body, { messageId });
    this.published++;
    this.onPublish?.(o);
  }

  /** A message with the all-zero ChargerId, as Zaptec sends now and then. */
  publishNullCharger(installationId: string, at: number): void {
    this.publishRaw(
      installationId,
      encodeNbfx(
        JSON.stringify({ ChargerId: NULL_CHARGER_ID, StateId: -1, Timestamp: new Date(at).toISOString() }),
      ),
    );
  }

  /**
   * Lets the fleet live, publishing as things happen: `eventsPerSecond` observations a second at random (the
   * demo), or a named session pattern on each charger's own timeline (the benchmarks).
   */
  live(options: LifeOptions, tickMs?: number): FleetLife;
  live(options: { sessions: SessionPattern }, tickMs?: number): PatternLife;
  live(options: LifeOptions | { sessions: SessionPattern }, tickMs = 250): FleetLife | PatternLife {
    const clock = this.#clock;
    let last = clock.now();
    let life: FleetLife | PatternLife;
    if ('sessions' in options) {
      // Six hours lived before anyone listens: the fleet is mid-day, every stage of a session under way.
      const pattern = new PatternLife(this.fleet, this, options.sessions, last - 6 * 3_600_000);
      pattern.warmUp(last);
      life = pattern;
    } else life = new FleetLife(this.fleet, this, options);
    void every(
      clock,
      tickMs,
      () => {
        const now = clock.now();
        life.tick(now, now - last);
        last = now;
      },
      this.#life.signal,
    );
    return life;
  }

  /** Publishes a body as it is (garbage, the all-zero ChargerId, ...) on an installation's topic. */
  publishRaw(installationId: string, body: Buffer | string): void {
    const messageId = randomUUID();
    for (const topic of this.#topics(installationId)) this.broker.publish(topic, body, { messageId });
  }
}
