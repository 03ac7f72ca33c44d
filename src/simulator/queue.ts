/**
 * The message store of one Service Bus entity (a topic subscription, or its dead-letter queue): ready
 * messages, locks with expiry, delivery counts and dead-lettering — Service Bus's peekLock semantics.
 */
import { randomUUID } from 'node:crypto';

/** How many completions the queue remembers (a demo runs for hours). */
const COMPLETIONS_KEPT = 10_000;

export interface StoredMessage {
  seq: number;
  messageId: string;
  body: Buffer | string;
  /** 'data': a binary data section (Zaptec's MC-NBFX); 'value': an AMQP string value. */
  bodyKind: 'data' | 'value';
  deliveryCount: number;
  enqueuedAt: number;
  applicationProperties: Record<string, unknown>;
  lockToken?: string;
  lockedUntil?: number;
  /** When the current lock was taken (the delivery), epoch ms. */
  lockedAt?: number;
  /** Which link holds the lock (so a dropped link can give it back). */
  holder?: object;
}

export interface QueueStats {
  ready: number;
  locked: number;
  completed: number;
  deadLettered: number;
  /** Messages given back to the queue to be delivered again (abandoned, a lock expired or its link gone). */
  requeued: number;
}

export class EntityQueue {
  readonly path: string;
  readonly #ready: StoredMessage[] = [];
  readonly #locked = new Map<string, StoredMessage>();
  #completed = 0;
  #deadLettered = 0;
  #requeued = 0;
  /** Where dead letters go; undefined for a dead-letter queue itself. */
  readonly deadLetterQueue: EntityQueue | undefined;
  readonly maxDeliveryCount: number;
  readonly lockDurationMs: number;

  constructor(
    path: string,
    options: { maxDeliveryCount: number; lockDurationMs: number; withDeadLetterQueue: boolean },
  ) {
    this.path = path;
    this.maxDeliveryCount = options.maxDeliveryCount;
    this.lockDurationMs = options.lockDurationMs;
    this.deadLetterQueue = options.withDeadLetterQueue
      ? new EntityQueue(`${path}/$DeadLetterQueue`, { ...options, withDeadLetterQueue: false })
      : undefined;
  }

  enqueue(m: StoredMessage): void {
    this.#ready.push(m);
  }

  get readyCount(): number {
    return this.#ready.length;
  }

  /** The next ready message, now locked by `holder`. */
  lockNext(holder: object, now: number): StoredMessage | undefined {
    const m = this.#ready.shift();
    if (!m) return undefined;
    m.lockToken = randomUUID();
    m.lockedUntil = now + this.lockDurationMs;
    m.lockedAt = now;
    m.holder = holder;
    this.#locked.set(m.lockToken, m);
    return m;
  }

  /** The locked message for a token, if the lock is still held. */
  locked(token: string, now: number): StoredMessage | undefined {
    const m = this.#locked.get(token);
    return m && (m.lockedUntil ?? 0) > now ? m : undefined;
  }

  renew(token: string, now: number): number | undefined {
    const m = this.locked(token, now);
    if (!m) return undefined;
    m.lockedUntil = now + this.lockDurationMs;
    return m.lockedUntil;
  }

  complete(token: string): boolean {
    const lockedAt = this.#locked.get(token)?.lockedAt;
    const m = this.#unlock(token);
    if (m) {
      this.#completed++;
      this.completions.push({ lockedAt: lockedAt ?? 0, completedAt: Date.now() });
      if (this.completions.length > COMPLETIONS_KEPT) this.completions.shift();
    }
    return Boolean(m);
  }

  /** The newest completions: when each message was delivered and when it was completed (for tests). */
  readonly completions: { lockedAt: number; completedAt: number }[] = [];

  /** Back to the front of the queue with one more delivery; dead-lettered past the maximum. */
  abandon(token: string, properties: Record<string, unknown> = {}, countDelivery = true): boolean {
    const m = this.#unlock(token);
    if (!m) return false;
    this.#requeue(m, properties, countDelivery);
    return true;
  }

  deadLetter(token: string, properties: Record<string, unknown>): boolean {
    const m = this.#unlock(token);
    if (!m) return false;
    this.#toDeadLetters(m, properties);
    return true;
  }

  /** Gives back every lock `holder` has (its link or connection dropped). */
  releaseHolder(holder: object): number {
    let n = 0;
    for (const m of [...this.#locked.values()]) {
      if (m.holder === holder && m.lockToken) {
        this.abandon(m.lockToken);
        n++;
      }
    }
    return n;
  }

  /** Expired locks go back to the queue (with one more delivery). */
  expireLocks(now: number): void {
    for (const m of [...this.#locked.values()])
      if ((m.lockedUntil ?? 0) <= now && m.lockToken) this.abandon(m.lockToken);
  }

  stats(): QueueStats {
    return {
      ready: this.#ready.length,
      locked: this.#locked.size,
      completed: this.#completed,
      deadLettered: this.#deadLettered,
      requeued: this.#requeued,
    };
  }

  /** Messages waiting, oldest first (for tests and the dead-letter queue). */
  peek(): StoredMessage[] {
    return [...this.#ready, ...this.#locked.values()];
  }

  #unlock(token: string): StoredMessage | undefined {
    const m = this.#locked.get(token);
    if (!m) return undefined;
    this.#locked.delete(token);
    m.lockToken = undefined;
    m.lockedUntil = undefined;
    m.holder = undefined;
    return m;
  }

  #requeue(m: StoredMessage, properties: Record<string, unknown>, countDelivery: boolean): void {
    Object.assign(m.applicationProperties, properties);
    if (countDelivery) m.deliveryCount++;
    if (countDelivery && m.deliveryCount >= this.maxDeliveryCount && this.deadLetterQueue) {
      this.#toDeadLetters(m, {
        DeadLetterReason: 'MaxDeliveryCountExceeded',
        DeadLetterErrorDescription: `Message could not be consumed after ${this.maxDeliveryCount} delivery attempts.`,
      });
      return;
    }
    this.#requeued++;
    this.#ready.unshift(m);
  }

  #toDeadLetters(m: StoredMessage, properties: Record<string, unknown>): void {
    this.#deadLettered++;
    this.deadLetterQueue?.enqueue({
      ...m,
      applicationProperties: { ...m.applicationProperties, ...properties },
      deliveryCount: 0,
    });
  }
}
