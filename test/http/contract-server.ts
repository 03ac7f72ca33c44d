/**
 * A loopback server that enforces one vendor's documented contract exactly (rate-limits.md §6), and
 * signals excess the way that vendor does. Windows are scaled like the client's profile.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Rule =
  | { kind: 'fixed'; limit: number; ms: number }
  | { kind: 'sliding'; limit: number; ms: number }
  | { kind: 'bucket'; ratePerMs: number; burst: number };

export interface Contract {
  vendor: string;
  /** Which requests a rule set applies to. */
  groups: { method?: string; path: RegExp; rules: Rule[] }[];
  /** Headers for a response; `resetAt` is when the exhausted window frees (server clock). */
  headers(o: {
    status: number;
    limit: number;
    remaining: number;
    resetAt: number;
    now: number;
  }): Record<string, string>;
  body429: string;
}

class RuleState {
  times: number[] = [];
  tat = 0;
  readonly rule: Rule;
  constructor(rule: Rule) {
    this.rule = rule;
  }
  /** When a request at `now` would be allowed (now if at once). */
  freeAt(now: number): number {
    const r = this.rule;
    if (r.kind === 'bucket') {
      const t = 1 / r.ratePerMs;
      return Math.max(now, Math.max(this.tat, now) - (r.burst - 1) * t);
    }
    if (r.kind === 'fixed') {
      const start = Math.floor(now / r.ms) * r.ms;
      const n = this.times.filter((x) => x >= start).length;
      return n < r.limit ? now : start + r.ms;
    }
    const inWindow = this.times.filter((x) => x > now - r.ms);
    return inWindow.length < r.limit ? now : inWindow[inWindow.length - r.limit]! + r.ms;
  }
  record(now: number): void {
    const r = this.rule;
    if (r.kind === 'bucket') this.tat = Math.max(this.tat, now) + 1 / r.ratePerMs;
    else this.times.push(now);
  }
  remaining(now: number): number {
    const r = this.rule;
    if (r.kind === 'bucket') return Math.floor((now - (this.tat - r.burst / r.ratePerMs)) * r.ratePerMs);
    const from = r.kind === 'fixed' ? Math.floor(now / r.ms) * r.ms : now - r.ms;
    return Math.max(
      0,
      r.limit - this.times.filter((x) => (r.kind === 'fixed' ? x >= from : x > from)).length,
    );
  }
  limit(): number {
    return this.rule.kind === 'bucket' ? this.rule.burst : this.rule.limit;
  }
}

export class ContractServer {
  readonly log: { at: number; method: string; path: string; status: number }[] = [];
  #server: Server | undefined;
  #states: { group: Contract['groups'][number]; states: RuleState[] }[];
  /** While set, every request is refused until then (the server starts out exhausted). */
  exhaustedUntil = 0;
  url = '';

  readonly contract: Contract;

  constructor(contract: Contract) {
    this.contract = contract;
    this.#states = contract.groups.map((group) => ({
      group,
      states: group.rules.map((r) => new RuleState(r)),
    }));
  }

  get refused(): number {
    return this.log.filter((r) => r.status === 429).length;
  }

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const now = Date.now();
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const method = req.method ?? 'GET';
        const applicable = this.#states.filter(
          (s) => (!s.group.method || s.group.method === method) && s.group.path.test(path),
        );
        const states = applicable.flatMap((s) => s.states);
        let freeAt = Math.max(now, ...states.map((s) => s.freeAt(now)));
        if (this.exhaustedUntil > now) freeAt = Math.max(freeAt, this.exhaustedUntil);
        const tightest = states.reduce<RuleState | undefined>(
          (a, s) => (a === undefined || s.remaining(now) < a.remaining(now) ? s : a),
          undefined,
        );
        const status = freeAt > now ? 429 : 200;
        if (status === 200) for (const s of states) s.record(now);
        this.log.push({ at: now, method, path, status });
        const headers = this.contract.headers({
          status,
          limit: tightest?.limit() ?? 0,
          remaining: status === 429 ? 0 : (tightest?.remaining(now) ?? 0),
          resetAt: status === 429 ? freeAt : now,
          now,
        });
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(status === 429 ? this.contract.body429 : '{"ok":true}');
      });
    });
    // Longer than the client's 4 s keep-alive, so a reused socket is never one the server is closing.
    this.#server.keepAliveTimeout = 5_000;
    await new Promise<void>((r) => this.#server!.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}
