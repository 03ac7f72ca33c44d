/**
 * An AMQP 1.0 broker on rhea, loopback only, that the real @azure/service-bus SDK accepts as a Service
 * Bus namespace (servicebus.md §2): SASL ANONYMOUS, `$cbs` put-token with SAS checking, topic
 * subscriptions with credit and drain, the four settlements, `$management` renew-lock and
 * update-disposition, redelivery when a link or connection drops, max delivery count, dead-letter queue.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:net';
import rhea, { type Connection, type Delivery, type EventContext, type Receiver, type Sender } from 'rhea';
import { EntityQueue, type QueueStats, type StoredMessage } from './queue.js';

export interface BrokerOptions {
  host?: string;
  lockDurationMs?: number;
  maxDeliveryCount?: number;
}

interface Subscription {
  topic: string;
  name: string;
  keyName: string;
  queue: EntityQueue;
}

interface LinkState {
  queue: EntityQueue;
  /** Deliveries handed to rhea but not yet on the wire (rhea's credit drops only when they go: P11). */
  unsent: Delivery[];
}

/** The parts of rhea's links this broker uses that its typings leave out. */
interface RawLink {
  name: string;
  credit: number;
  _draining?: boolean;
  remote: {
    attach?: {
      source?: { address?: string };
      target?: { address?: string };
      snd_settle_mode?: number;
      rcv_settle_mode?: number;
    };
  };
  local: { attach: { snd_settle_mode: number; rcv_settle_mode: number } };
  session: { outgoing: { next_pending_delivery: number; deliveries: { available(): number } } };
}
const raw = (link: Sender | Receiver): RawLink => link as unknown as RawLink;

interface Outcome {
  described(): unknown;
}
const outcomes = rhea.message as unknown as {
  accepted(): Outcome;
  released(): Outcome;
  modified(o: object): Outcome;
  rejected(o: object): Outcome;
};

/** The .NET byte order of a GUID: the SDK reads the delivery tag this way (servicebus.md §2.4). */
function lockTokenTag(token: string): Buffer {
  const b = Buffer.from(token.replace(/-/g, ''), 'hex');
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
}

function tagToken(tag: Buffer): string {
  const b = lockTokenTag(
    Buffer.from(tag)
      .toString('hex')
      .replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5'),
  ).toString('hex');
  return b.replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5');
}

function uuidString(v: unknown): string {
  if (Buffer.isBuffer(v)) return rhea.uuid_to_string(v);
  return String(v).toLowerCase();
}

export class ServiceBusBroker {
  readonly #options: Required<BrokerOptions>;
  readonly #keys = new Map<string, string>();
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #links = new Map<Sender, LinkState>();
  readonly #connections = new Set<Connection>();
  /** Connections of a process the simulation froze (`hold`): nothing is delivered to their links. */
  readonly #held = new Set<Connection>();
  /** Per connection: entity path (lower case) → the key name its put-token was signed with. */
  readonly #authorized = new WeakMap<Connection, Map<string, string>>();
  #container = rhea.create_container({ id: 'zaptec-sync-broker' });
  #server: Server | undefined;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  port = 0;
  /** Put-tokens refused (wrong key): the rotation tests look at it. */
  refusedTokens = 0;
  /** Deliveries sent and dispositions received so far: the simulation harness watches it move. */
  activity = 0;

  constructor(options: BrokerOptions = {}) {
    this.#options = { host: '127.0.0.1', lockDurationMs: 30_000, maxDeliveryCount: 10, ...options };
    this.#wire();
  }

  // ---- administration (the simulator and tests) ----

  setKey(keyName: string, key: string): void {
    this.#keys.set(keyName, key);
  }

  /**
   * A new key for `keyName`. Links that authenticated with the old one are detached with an
   * authorization error, as Service Bus does when a token is no longer valid; re-attaching needs a
   * put-token signed with the new key.
   */
  rotateKey(keyName: string, key: string): void {
    this.#keys.set(keyName, key);
    for (const c of this.#connections) {
      const auth = this.#authorized.get(c);
      for (const [path, name] of [...(auth?.entries() ?? [])]) if (name === keyName) auth?.delete(path);
    }
    for (const [sender] of [...this.#links]) {
      const sub = this.#subscriptionOf(sender);
      if (sub?.keyName !== keyName) continue;
      this.#linkGone(sender);
      sender.close({
        condition: 'amqp:unauthorized-access',
        description: 'The token is no longer valid: the SAS key was rotated.',
      });
    }
  }

  #subscriptionOf(sender: Sender): Subscription | undefined {
    const address = (raw(sender).remote.attach?.source?.address ?? '')
      .toLowerCase()
      .replace(/\/\$deadletterqueue$/, '');
    return this.#subscriptions.get(address);
  }

  /** A subscription's key in the broker: its entity path, in lower case. */
  #subscriptionPath(topic: string, name: string): string {
    return `${topic}/Subscriptions/${name}`.toLowerCase();
  }

  createSubscription(topic: string, name: string, keyName: string): void {
    const path = this.#subscriptionPath(topic, name);
    if (this.#subscriptions.has(path)) return;
    const queue = new EntityQueue(`${topic}/Subscriptions/${name}`, {
      maxDeliveryCount: this.#options.maxDeliveryCount,
      lockDurationMs: this.#options.lockDurationMs,
      withDeadLetterQueue: true,
    });
    this.#subscriptions.set(path, { topic: topic.toLowerCase(), name, keyName, queue });
  }

  /** Publishes to every subscription of the topic, the way Zaptec does (a message id on every message). */
  publish(
    topic: string,
    body: Buffer | string,
    options: { messageId?: string; bodyKind?: 'data' | 'value' } = {},
  ): void {
    const now = Date.now();
    for (const s of this.#subscriptions.values()) {
      if (s.topic !== topic.toLowerCase()) continue;
      s.queue.enqueue({
        seq: ++this.#seq,
        messageId: options.messageId ?? randomUUID(),
        body,
        bodyKind: options.bodyKind ?? (typeof body === 'string' ? 'value' : 'data'),
        deliveryCount: 0,
        enqueuedAt: now,
        applicationProperties: {},
      });
      this.#pump(s.queue);
    }
  }

  /** When each completed message was delivered and completed (epoch ms, this machine's clock). */
  completions(topic: string, name: string): { lockedAt: number; completedAt: number }[] {
    return [...(this.#subscriptions.get(this.#subscriptionPath(topic, name))?.queue.completions ?? [])];
  }

  stats(topic: string, name: string): QueueStats & { deadLetters: StoredMessage[] } {
    const s = this.#subscriptions.get(this.#subscriptionPath(topic, name));
    if (!s) throw new Error(`no subscription ${topic}/${name}`);
    return { ...s.queue.stats(), deadLetters: s.queue.deadLetterQueue?.peek() ?? [] };
  }

  /**
   * Messages an attached receiver has to deal with now: ready while it has credit for them (or waiting for
   * its credit), and locked by it. The simulation harness lets real time pass for them before it moves on.
   */
  busy(): { ready: number; locked: number; starved: number } {
    const n = { ready: 0, locked: 0, starved: 0 };
    const credit = new Map<EntityQueue, number>();
    for (const [sender, state] of this.#links)
      credit.set(
        state.queue,
        (credit.get(state.queue) ?? 0) +
          (this.#held.has(sender.connection) ? 0 : Math.max(0, raw(sender).credit)),
      );
    for (const [queue, c] of credit) {
      const stats = queue.stats();
      n.locked += stats.locked;
      if (c > 0) n.ready += stats.ready;
      else n.starved += stats.ready; // attached, waiting for the receiver's credit
    }
    return n;
  }

  /**
   * Holds every connection open now as a stopped process's would be held (the simulation's SIGSTOP): nothing
   * more is delivered to their links, whose credit stays unused, and what they hold stays locked to them.
   * Returns the thaw, after which deliveries to them go on.
   */
  hold(): () => void {
    const held = [...this.#connections];
    for (const c of held) this.#held.add(c);
    return () => {
      for (const c of held) this.#held.delete(c);
      for (const sender of [...this.#links.keys()])
        if (held.includes(sender.connection)) this.#pumpLink(sender);
    };
  }

  /** Whether a receiver is attached to the subscription now. */
  attached(topic: string, name: string): boolean {
    const sub = this.#subscriptions.get(this.#subscriptionPath(topic, name));
    for (const state of this.#links.values()) if (state.queue === sub?.queue) return true;
    return false;
  }

  async start(port = this.port): Promise<number> {
    // Small frames (dispositions, flow) go out at once: Nagle with delayed ACKs holds them ~40 ms on loopback.
    const server = this.#container.listen({
      port,
      host: this.#options.host,
      noDelay: true,
      tcp_no_delay: true,
    } as rhea.ServerConnectionOptions) as unknown as Server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    this.#server = server;
    this.port = (server.address() as { port: number }).port;
    this.#timer = setInterval(() => this.#expireLocks(), 250);
    return this.port;
  }

  /** Stops listening and drops every connection (a broker crash, as far as clients can tell). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.dropConnections();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resets every TCP connection; the broker stays up. */
  dropConnections(): void {
    for (const c of [...this.#connections]) {
      (c as unknown as { socket?: { destroy(): void } }).socket?.destroy();
      this.#forget(c);
    }
  }

  // ---- AMQP ----

  #wire(): void {
    const c = this.#container;
    c.options.treat_modified_as_released = false;
    c.on('error', () => {}); // P16: an unhandled link error must not kill the process
    c.on('connection_open', (ctx: EventContext) => {
      this.activity++;
      this.#connections.add(ctx.connection);
      this.#authorized.set(ctx.connection, new Map());
    });
    for (const ev of ['connection_close', 'connection_error', 'disconnected']) {
      c.on(ev, (ctx: EventContext) => this.#forget(ctx.connection));
    }
    c.on('sender_open', (ctx: EventContext) => this.#senderOpen(ctx.sender!));
    c.on('receiver_open', (ctx: EventContext) => {
      ctx.receiver!.set_target({ address: raw(ctx.receiver!).remote.attach?.target?.address ?? '' });
    });
    for (const ev of ['sender_close', 'sender_error'])
      c.on(ev, (ctx: EventContext) => this.#linkGone(ctx.sender!));
    c.on('sendable', (ctx: EventContext) => this.#pumpLink(ctx.sender!));
    c.on('sender_draining', (ctx: EventContext) => this.#pumpLink(ctx.sender!));
    c.on('message', (ctx: EventContext) => this.#onMessage(ctx));
    for (const outcome of ['accepted', 'rejected', 'released', 'modified']) {
      c.on(outcome, (ctx: EventContext) => this.#settled(ctx, outcome));
    }
  }

  #forget(connection: Connection): void {
    this.#held.delete(connection);
    if (!this.#connections.delete(connection)) return;
    for (const [sender, state] of [...this.#links]) {
      if (sender.connection === connection) {
        this.#links.delete(sender);
        state.queue.releaseHolder(sender);
        this.#pump(state.queue);
      }
    }
  }

  #linkGone(sender: Sender): void {
    const state = this.#links.get(sender);
    if (!state) return;
    this.#links.delete(sender);
    state.queue.releaseHolder(sender); // tests see redelivery at once
    this.#pump(state.queue);
  }

  /** A client's receiver attaches: the subscription (or its DLQ), or the `$cbs` / `$management` reply link. */
  #senderOpen(sender: Sender): void {
    this.activity++;
    const link = raw(sender);
    const address: string = link.remote.attach?.source?.address ?? '';
    sender.set_source({ address });
    link.local.attach.snd_settle_mode = link.remote.attach?.snd_settle_mode ?? 0;
    link.local.attach.rcv_settle_mode = link.remote.attach?.rcv_settle_mode ?? 0;
    if (address === '$cbs' || address.toLowerCase().endsWith('/$management')) return;
    const queue = this.#entity(address);
    if (!queue) {
      sender.close({
        condition: 'amqp:not-found',
        description: `The messaging entity '${address}' could not be found.`,
      });
      return;
    }
    const subPath = address.toLowerCase().replace(/\/\$deadletterqueue$/, '');
    const keyName = this.#authorized.get(sender.connection)?.get(subPath);
    const sub = this.#subscriptions.get(subPath);
    if (!keyName || keyName !== sub?.keyName) {
      sender.close({
        condition: 'amqp:unauthorized-access',
        description: `Unauthorized access to '${address}'.`,
      });
      return;
    }
    this.#links.set(sender, { queue, unsent: [] });
  }

  #entity(address: string): EntityQueue | undefined {
    const lower = address.toLowerCase();
    const dlq = lower.endsWith('/$deadletterqueue');
    const sub = this.#subscriptions.get(dlq ? lower.slice(0, -'/$deadletterqueue'.length) : lower);
    return dlq ? sub?.queue.deadLetterQueue : sub?.queue;
  }

  #pump(queue: EntityQueue): void {
    for (const [sender, state] of this.#links) if (state.queue === queue) this.#pumpLink(sender);
  }

  #pumpLink(sender: Sender): void {
    const state = this.#links.get(sender);
    if (!state || !sender.is_open() || this.#held.has(sender.connection)) return;
    const link = raw(sender);
    const outgoing = link.session.outgoing;
    const pendingFrom = outgoing.next_pending_delivery;
    state.unsent = state.unsent.filter((d) => (d as unknown as { id: number }).id >= pendingFrom);
    // rhea keeps each delivery of a session in a buffer of 2048 until both ends have settled it, and frees
    // them in order only: one the client never settles (a handler that returned without settling, its lock
    // long expired and the message redelivered) holds every later one, and 2048 deliveries on, `send` throws.
    // A session that full is detached as a busy broker would; the client attaches a new link (and session).
    const room = outgoing.deliveries.available();
    if (room === 0 && state.queue.readyCount > 0) {
      sender.close({
        condition: 'com.microsoft:server-busy',
        description: 'Too many deliveries on this link are unsettled; attach it again.',
      });
      this.#linkGone(sender);
      return;
    }
    let credit = Math.min(link.credit - state.unsent.length, room);
    const now = Date.now();
    while (credit > 0 && state.queue.readyCount > 0) {
      const m = state.queue.lockNext(sender, now)!;
      const delivery = sender.send(
        {
          message_id: m.messageId,
          body: m.bodyKind === 'data' ? rhea.message.data_section(Buffer.from(m.body)) : String(m.body),
          delivery_count: m.deliveryCount,
          application_properties: m.applicationProperties,
          message_annotations: {
            'x-opt-locked-until': new Date(m.lockedUntil!),
            'x-opt-sequence-number': rhea.types.wrap_long(m.seq),
            'x-opt-enqueued-time': new Date(m.enqueuedAt),
          },
        },
        lockTokenTag(m.lockToken!),
      );
      state.unsent.push(delivery);
      credit--;
      this.activity++;
    }
    if (link._draining && state.queue.readyCount === 0) sender.set_drained(true);
  }

  #settled(ctx: EventContext, outcome: string): void {
    const sender = ctx.sender!;
    const delivery = ctx.delivery! as Delivery & {
      remote_state?: Record<string, unknown>;
      tag: Buffer;
      remote_settled: boolean;
    };
    const state = this.#links.get(sender);
    this.activity++;
    const token = tagToken(delivery.tag);
    const queue = state?.queue;
    let ok = false;
    if (queue) {
      const remote = (delivery.remote_state ?? {}) as Record<string, unknown>;
      if (outcome === 'accepted') ok = queue.complete(token);
      else if (outcome === 'released') ok = queue.abandon(token, {}, false);
      else if (outcome === 'modified') {
        const props = (remote.message_annotations ?? {}) as Record<string, unknown>;
        ok = remote.undeliverable_here ? queue.abandon(token, props, false) : queue.abandon(token, props);
      } else if (outcome === 'rejected') {
        const error = (remote.error ?? {}) as {
          condition?: string;
          info?: Record<string, unknown>;
          description?: string;
        };
        ok = queue.deadLetter(token, {
          DeadLetterReason: error.info?.DeadLetterReason ?? error.condition ?? 'Rejected',
          DeadLetterErrorDescription: error.info?.DeadLetterErrorDescription ?? error.description ?? '',
          ...Object.fromEntries(
            Object.entries(error.info ?? {}).filter(([k]) => !k.startsWith('DeadLetter')),
          ),
        });
      }
    }
    // Answer with a settled disposition echoing the outcome (P14), never the dead-letter error, or the
    // lock-lost error when the lock was gone.
    const echo = ok
      ? outcome === 'accepted'
        ? outcomes.accepted()
        : outcome === 'rejected'
          ? outcomes.rejected({})
          : outcome === 'released'
            ? outcomes.released()
            : outcomes.modified({})
      : outcomes.rejected({
          error: { condition: 'com.microsoft:message-lock-lost', description: 'The lock was lost.' },
        });
    delivery.update(true, echo.described());
    delivery.remote_settled = true; // P12: the SDK never settles second, and rhea would stall at 2048
    if (queue) this.#pump(queue);
  }

  /** Messages to the broker: `$cbs` put-tokens and `$management` operations. */
  #onMessage(ctx: EventContext): void {
    const receiver = ctx.receiver!;
    const address: string = raw(receiver).remote.attach?.target?.address ?? '';
    const msg = ctx.message!;
    if (address === '$cbs') return this.#putToken(ctx.connection, msg);
    if (address.toLowerCase().endsWith('/$management'))
      return this.#management(ctx.connection, receiver, address, msg);
  }

  #reply(connection: Connection, replyTo: string | undefined, message: Record<string, unknown>): void {
    const senders = (
      connection as unknown as { find_sender(f: (s: Sender) => boolean): Sender | undefined }
    ).find_sender((s: Sender) => raw(s).name === replyTo);
    senders?.send(message as unknown as rhea.Message);
  }

  #putToken(connection: Connection, msg: rhea.Message): void {
    this.activity++;
    const props = (msg.application_properties ?? {}) as Record<string, string>;
    const audience = String(props.name ?? '');
    const verdict = this.#checkToken(String(msg.body ?? ''), audience);
    if (verdict.ok) {
      const path = new URL(audience.replace(/^sb:/, 'http:')).pathname.replace(/^\//, '').toLowerCase();
      this.#authorized.get(connection)?.set(path, verdict.keyName);
    } else this.refusedTokens++;
    this.#reply(connection, msg.reply_to, {
      correlation_id: msg.message_id,
      application_properties: verdict.ok
        ? { 'status-code': 202, 'status-description': 'Accepted' }
        : { 'status-code': 401, 'status-description': `Unauthorized: ${verdict.reason}` },
    });
  }

  #checkToken(
    token: string,
    audience: string,
  ): { ok: true; keyName: string } | { ok: false; reason: string } {
    const m = /^SharedAccessSignature (.+)$/.exec(token);
    if (!m) return { ok: false, reason: 'not a shared access signature' };
    const fields = new Map(
      m[1]!.split('&').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    const [sr, sig, se, skn] = ['sr', 'sig', 'se', 'skn'].map((k) => fields.get(k));
    if (!sr || !sig || !se || !skn) return { ok: false, reason: 'incomplete signature' };
    const key = this.#keys.get(decodeURIComponent(skn));
    if (!key) return { ok: false, reason: 'unknown key name' };
    const expected = createHmac('sha256', key).update(`${sr}\n${se}`).digest();
    const given = Buffer.from(decodeURIComponent(sig), 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return { ok: false, reason: 'InvalidSignature' };
    if (Number(se) * 1000 < Date.now()) return { ok: false, reason: 'expired token' };
    if (decodeURIComponent(sr).toLowerCase() !== audience.toLowerCase())
      return { ok: false, reason: 'audience mismatch' };
    return { ok: true, keyName: decodeURIComponent(skn) };
  }

  #management(connection: Connection, _receiver: Receiver, address: string, msg: rhea.Message): void {
    const props = (msg.application_properties ?? {}) as Record<string, unknown>;
    const body = (msg.body ?? {}) as Record<string, unknown>;
    const queue = this.#entity(address.slice(0, -'/$management'.length));
    const respond = (statusCode: number, responseBody: unknown = {}) =>
      this.#reply(connection, msg.reply_to, {
        correlation_id: msg.message_id,
        application_properties: { statusCode, statusDescription: statusCode < 300 ? 'OK' : 'Error' },
        body: responseBody,
      });
    if (!queue) return respond(404);
    const tokens = ((body['lock-tokens'] as unknown[]) ?? []).map(uuidString);
    const now = Date.now();
    switch (props.operation) {
      case 'com.microsoft:renew-lock': {
        const expirations = tokens.map((t) => queue.renew(t, now));
        if (expirations.some((e) => e === undefined)) return respond(410);
        return respond(200, { expirations: expirations.map((e) => new Date(e!)) });
      }
      case 'com.microsoft:update-disposition': {
        const status = body['disposition-status'];
        for (const t of tokens) {
          if (status === 'completed') queue.complete(t);
          else if (status === 'abandoned')
            queue.abandon(t, (body['properties-to-modify'] ?? {}) as Record<string, unknown>);
          else if (status === 'suspended') {
            queue.deadLetter(t, {
              DeadLetterReason: body['deadletter-reason'] ?? 'Suspended',
              DeadLetterErrorDescription: body['deadletter-description'] ?? '',
            });
          }
        }
        this.#pump(queue);
        return respond(200);
      }
      case 'com.microsoft:peek-message':
        return respond(204);
      default:
        return respond(501);
    }
  }

  #expireLocks(): void {
    const now = Date.now();
    for (const s of this.#subscriptions.values()) {
      s.queue.expireLocks(now);
      s.queue.deadLetterQueue?.expireLocks(now);
      this.#pump(s.queue);
    }
  }
}
