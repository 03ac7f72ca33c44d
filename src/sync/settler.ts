/**
 * Settlements leave in groups of one outcome at a time: rhea merges consecutive settlements of one tick
 * into one disposition range and can send the wrong outcome for some (servicebus.md P17), so a valid
 * message could be dead-lettered. Each group is awaited before the next kind goes out.
 */
import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';

type Kind = 'complete' | 'deadLetter';

interface Job {
  kind: Kind;
  run(): Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

export class Settler {
  #queue: Job[] = [];
  #running = false;

  complete(receiver: ServiceBusReceiver, message: ServiceBusReceivedMessage): Promise<void> {
    return this.#enqueue('complete', () => receiver.completeMessage(message));
  }

  deadLetter(
    receiver: ServiceBusReceiver,
    message: ServiceBusReceivedMessage,
    reason: string,
    description: string,
  ): Promise<void> {
    return this.#enqueue('deadLetter', () =>
      receiver.deadLetterMessage(message, {
        deadLetterReason: reason,
        deadLetterErrorDescription: description,
      }),
    );
  }

  #enqueue(kind: Kind, run: () => Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind, run, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    // Let the current tick's settlements gather first.
    await new Promise((r) => setImmediate(r));
    while (this.#queue.length > 0) {
      const kind = this.#queue[0]!.kind;
      const group = this.#queue.filter((j) => j.kind === kind);
      this.#queue = this.#queue.filter((j) => j.kind !== kind);
      await Promise.all(
        group.map((j) =>
          j.run().then(
            () => j.resolve(),
            (err) => j.reject(err),
          ),
        ),
      );
    }
    this.#running = false;
  }
}
