/**
 * Live state through Azure Service Bus: one supervised subscription (event-stream.ts) per followed installation
 * and one per user group (CONTRACT §5). A group carries an installation from the first observation of one of
 * its chargers that arrives through it (remembered in the database); the installation's own subscription is
 * closed then, and comes back when the group answers 403/404.
 */
import { describeError } from '../log.js';
import {
  EventStream,
  installationOwner,
  type LiveEventsDeps,
  type StreamOwner,
  type StreamState,
} from './event-stream.js';

/** Streams started in one turn of the event loop. */
const STARTS_PER_TURN = 20;

/** The supervisors of every followed installation not carried by a user group, and of every user group. */
export class LiveEvents {
  readonly #d: LiveEventsDeps;
  readonly #streams = new Map<string, EventStream>();
  readonly #groups = new Map<string, EventStream>();
  /** Installation → the user group that carries its events. */
  readonly #carried: Map<string, string>;
  /** The installation of each charger a group's message named (the inventory, asked once per charger). */
  readonly #installationOf = new Map<string, string>();
  #followed = new Set<string>();
  #stopped = false;

  constructor(deps: LiveEventsDeps) {
    this.#d = deps;
    const groups = deps.userGroups;
    this.#carried = groups && groups.ids.length > 0 ? groups.store.load(groups.ids) : new Map();
  }

  /** Starts streams for new installations (and the user groups), stops those no longer needed. */
  async follow(installationIds: string[]): Promise<void> {
    this.#followed = new Set(installationIds);
    for (const id of this.#d.userGroups?.ids ?? []) {
      if (this.#groups.has(id)) continue;
      const stream = new EventStream(this.#groupOwner(id), this.#d);
      this.#groups.set(id, stream);
      stream.start();
    }
    await this.#reconcile();
  }

  /** Own streams for the followed installations no group carries; none for the others. */
  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const wanted = new Set([...this.#followed].filter((id) => !this.#carried.has(id)));
    for (const [id, s] of this.#streams) {
      if (!wanted.has(id)) {
        this.#streams.delete(id);
        await s.stop();
      }
    }
    let started = 0;
    for (const id of wanted) {
      if (this.#streams.has(id)) continue;
      // A turn of the event loop after every few: each start writes its status and sets its first connection
      // going, and 300 at once (a large account's first start) held the loop for 50 ms and more.
      if (started > 0 && started % STARTS_PER_TURN === 0) {
        await this.#d.clock.sleep(0);
        if (this.#stopped) return;
        if (this.#streams.has(id) || !this.#followed.has(id) || this.#carried.has(id)) continue;
      }
      const s = new EventStream(
        installationOwner(id, this.#d, () => this.#carried.has(id)),
        this.#d,
      );
      this.#streams.set(id, s);
      s.start();
      started++;
    }
  }

  #groupOwner(id: string): StreamOwner {
    const carriedBy = () =>
      [...this.#carried].flatMap(([inst, g]) => (g === id && this.#followed.has(inst) ? [inst] : []));
    return {
      kind: 'user group',
      id,
      details: (o) => this.#d.api.userGroupConnectionDetails(id, o),
      state: (state, detail, changed) => {
        this.#d.userGroups?.store.setEvents(id, state, detail);
        for (const inst of carriedBy()) this.#tell(inst, state, detail, changed);
      },
      gap: () => {
        for (const inst of carriedBy()) this.#d.onGap(inst);
      },
      route: (chargerId) => {
        const inst = this.#installation(chargerId);
        // A group may carry installations this daemon does not follow (ZAPTEC_INSTALLATIONS): their chargers
        // are not in the inventory, and once a lookup has found one of them its events are not kept.
        if (!inst) return this.#d.notFollowed?.(chargerId) ? false : undefined;
        if (!this.#followed.has(inst)) return undefined;
        if (this.#carried.get(inst) !== id) this.#carry(inst, id);
        return inst;
      },
      refused: (status) => {
        this.#release(id);
        return `the user group's subscription is not available (messagingConnectionDetails answered ${status}); its installations use their own`;
      },
    };
  }

  #installation(key: string): string | undefined {
    const known = this.#installationOf.get(key);
    if (known) return known;
    const inst = this.#d.installationOf?.(key);
    if (inst) this.#installationOf.set(key, inst);
    return inst;
  }

  /** The installation's status as its group's connection is. */
  #tell(inst: string, state: StreamState, detail: string | null, changed: boolean): void {
    this.#d.syncStatus.setEvents(inst, state, detail ?? `through user group ${this.#carried.get(inst)}`);
    if (changed) this.#d.onConnected(inst, state === 'connected');
  }

  /** An observation of the installation came through the group: the group carries it from now on. */
  #carry(inst: string, groupId: string): void {
    this.#carried.set(inst, groupId);
    this.#d.userGroups?.store.carry(inst, groupId, this.#d.clock.now());
    const g = this.#groups.get(groupId);
    if (g) this.#tell(inst, g.state, g.detail, true);
    this.#d.log.info(
      { installation: inst, userGroup: groupId },
      'live events now come through the user group',
    );
    this.#reconcile().catch((err) =>
      this.#d.problems?.fail(
        'live-events',
        `cannot close a carried installation's subscription (${describeError(err)})`,
        err,
      ),
    );
  }

  /** The group answered 403/404: its installations get their own subscriptions back. */
  #release(groupId: string): void {
    const released = [...this.#carried].filter(([, g]) => g === groupId).map(([inst]) => inst);
    if (released.length === 0) return;
    for (const inst of released) this.#carried.delete(inst);
    this.#d.userGroups?.store.release(groupId);
    this.#d.log.warn(
      { userGroup: groupId, installations: released.length },
      'the user group is refused: its installations use their own subscriptions again',
    );
    this.#reconcile().catch((err) =>
      this.#d.problems?.fail(
        'live-events',
        `cannot start an installation's own subscription (${describeError(err)})`,
        err,
      ),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.streams.map((s) => s.stop()));
    this.#streams.clear();
    this.#groups.clear();
  }

  connected(installationId: string): boolean {
    const group = this.#carried.get(installationId);
    if (group) return this.#groups.get(group)?.connected ?? false;
    return this.#streams.get(installationId)?.connected ?? false;
  }

  /** Each configured user group: its state and the followed installations it carries. */
  userGroups(): { id: string; state: StreamState; installations: string[] }[] {
    return [...this.#groups].map(([id, g]) => ({
      id,
      state: g.state,
      installations: [...this.#carried].flatMap(([inst, gid]) => (gid === id ? [inst] : [])),
    }));
  }

  counts(): { received: number; deadLettered: number; reconnects: number; committing: number } {
    let received = 0;
    let deadLettered = 0;
    let reconnects = 0;
    let committing = 0;
    for (const s of this.streams) {
      received += s.received;
      deadLettered += s.deadLettered;
      reconnects += s.reconnects;
      committing += s.committing;
    }
    return { received, deadLettered, reconnects, committing };
  }

  /** Every supervisor: the installations' own, then the user groups'. */
  get streams(): EventStream[] {
    return [...this.#streams.values(), ...this.#groups.values()];
  }
}
