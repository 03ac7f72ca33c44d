/**
 * One pure function that turns a response's status and headers into what the server asks of us: how long
 * to wait, what remains, and what windows it announces. Every convention of rate-limits.md §5.6; the
 * server's word is a floor, combined with max, and absurd values are clamped with a warning.
 */
import type { HeaderConventions } from './profile.js';

export type HeaderValue = string | string[] | undefined;
export type Headers = Record<string, HeaderValue>;

export interface Policy {
  name: string;
  quota: number;
  windowSeconds: number;
}

export interface RateLimitInfo {
  /** How long the server asks us to wait, in ms; undefined when it says nothing usable (use backoff). */
  waitMs: number | undefined;
  /** The server's remaining count, when it says. */
  remaining: number | undefined;
  /** The server's limit (a count), when it says. */
  limit: number | undefined;
  /** A window the server names (`X-Rate-Limit-Limit: 30m`, RateLimit-Policy `w`), seconds. */
  windowSeconds: number | undefined;
  /** When the server's window resets (local clock), when it says. */
  resetAt: number | undefined;
  /** The server says a quota is spent, whether or not it says until when. */
  exhausted: boolean;
  /** Windows announced by RateLimit-Policy. */
  policies: Policy[];
  /** Which headers produced the wait. */
  sources: string[];
  warnings: string[];
}

export interface ParseOptions extends HeaderConventions {
  /** Waits above this are implausible: clamped to it, with a warning. Default 24 h. */
  ceilingMs?: number;
}

const DAY_MS = 86_400_000;
/** The Date header has 1 s resolution: smaller differences are not skew. */
const SKEW_THRESHOLD_MS = 2_000;

function values(h: Headers, name: string): string[] {
  const v = h[name] ?? h[Object.keys(h).find((k) => k.toLowerCase() === name) ?? ''];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function first(h: Headers, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = values(h, n);
    if (v.length > 0) return v[v.length - 1];
  }
  return undefined;
}

const INTEGER = /^\s*\d+\s*$/;
const DECIMAL = /^\s*\d+\.\d+\s*$/;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const IMF = /^\s*[A-Za-z]{3},\s+(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{2}):(\d{2}):(\d{2})\s+GMT\s*$/;
const RFC850 = /^\s*[A-Za-z]+,\s+(\d{1,2})-([A-Za-z]{3})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})\s+GMT\s*$/;
const ASCTIME = /^\s*[A-Za-z]{3}\s+([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})\s*$/;

function utc(y: number, mon: string, d: number, h: number, mi: number, s: number): number | undefined {
  const m = MONTHS.indexOf(mon.toLowerCase());
  if (m < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  return Date.UTC(y, m, d, h, mi, s);
}

/** The three HTTP-date forms of RFC 9110, all GMT (asctime included, whatever the local zone). */
export function parseHttpDate(text: string, now: number): number | undefined {
  let m = IMF.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850.exec(text);
  if (m) {
    // Two-digit years more than 50 years ahead are in the past (RFC 9110 §5.6.7).
    const nowYear = new Date(now).getUTCFullYear();
    let y = Math.floor(nowYear / 100) * 100 + Number(m[3]);
    if (y > nowYear + 50) y -= 100;
    return utc(y, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME.exec(text);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}

const ISO = /^\s*(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?\s*$/i;

/** ISO-8601 with any number of fractional digits; zone-less only when the vendor says it means UTC. */
function parseIso(text: string, zonelessIsUtc: boolean): number | undefined | 'zoneless' {
  const m = ISO.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', zone] = m;
  if (!zone && !zonelessIsUtc) return 'zoneless';
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  t += Number(`0.${frac || '0'}`) * 1000;
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    t -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
  }
  return t;
}

/** `30m`, `1h`, `60s`, `1d` as a window in seconds; undefined for anything else. */
function parseWindow(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([smhd])\s*$/i.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd'];
}

interface Builder {
  now: number;
  skew: number;
  waits: { ms: number; source: string }[];
  info: RateLimitInfo;
  options: ParseOptions;
}

function addWait(b: Builder, ms: number, source: string): void {
  b.waits.push({ ms: Math.max(0, ms), source });
}

/** An absolute server time to a wait, corrected for the server's clock, rounded up to whole seconds. */
function untilServerTime(b: Builder, t: number): number {
  const local = t - b.skew;
  return Math.max(0, Math.ceil((local - b.now) / 1000) * 1000);
}

function retryAfter(b: Builder, h: Headers): void {
  for (const raw of values(h, 'retry-after').flatMap((v) => v.split(/,(?=\s*\d+\s*(?:,|$))/))) {
    if (INTEGER.test(raw) || DECIMAL.test(raw))
      addWait(b, wholeNumber(b, raw, 'Retry-After')! * 1000, 'retry-after');
    else {
      const date = parseHttpDate(raw, b.now);
      if (date !== undefined) addWait(b, untilServerTime(b, date), 'retry-after');
      else b.info.warnings.push(`Retry-After "${raw.trim()}" is neither seconds nor an HTTP date; ignored`);
    }
  }
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    for (const raw of values(h, name)) {
      if (INTEGER.test(raw) || DECIMAL.test(raw)) addWait(b, Math.ceil(Number(raw)), name);
      else b.info.warnings.push(`${name} "${raw}" is not a number of milliseconds; ignored`);
    }
  }
  for (const raw of values(h, 'x-retry-after')) {
    if (INTEGER.test(raw)) addWait(b, Number(raw) * 1000, 'x-retry-after');
    else b.info.warnings.push(`x-retry-after "${raw}" is not a whole number of seconds; ignored`);
  }
}

/** A whole number; a decimal is read leniently, rounded up and warned (rate-limits.md §5.6 rule 2). */
function wholeNumber(b: Builder, text: string, source: string): number | undefined {
  if (INTEGER.test(text)) return Number(text);
  if (DECIMAL.test(text)) {
    const n = Math.ceil(Number(text));
    b.info.warnings.push(`${source} "${text.trim()}" is not a whole number; read as ${n}`);
    return n;
  }
  b.info.warnings.push(`${source} "${text.trim()}" is not a number; ignored`);
  return undefined;
}

/** A reset value in the vendor's format (or detected), as a wait in ms. */
function resetWait(b: Builder, raw: string, source: string): number | undefined {
  const format = b.options.resetFormat ?? 'auto';
  const text = raw.trim();
  const iso = parseIso(text, b.options.zonelessIsUtc ?? false);
  if (iso === 'zoneless') {
    b.info.warnings.push(`${source} "${text}" has no time zone; ignored`);
    return undefined;
  }
  if (iso !== undefined) return untilServerTime(b, iso);
  const n = wholeNumber(b, text, source);
  if (n === undefined) return undefined;
  switch (format) {
    case 'epoch-s':
      return untilServerTime(b, n * 1000);
    case 'epoch-ms':
      return untilServerTime(b, n);
    case 'delta-s':
      return n * 1000;
    case 'delta-ms':
      return n;
    case 'iso':
    case 'auto':
      if (n >= 1e11) return untilServerTime(b, n);
      if (n >= 1e9) return untilServerTime(b, n * 1000);
      return n * 1000;
  }
}

function xRateLimit(b: Builder, h: Headers): void {
  for (const prefix of ['x-ratelimit', 'x-rate-limit']) {
    const remainingRaw = first(h, `${prefix}-remaining`);
    const limitRaw = first(h, `${prefix}-limit`, prefix);
    const resetRaw = first(h, `${prefix}-reset`);
    if (remainingRaw === undefined && limitRaw === undefined && resetRaw === undefined) continue;
    const source = `${prefix}-reset`;
    if (limitRaw !== undefined) {
      const window = parseWindow(limitRaw);
      if (window !== undefined) b.info.windowSeconds = window;
      else if (INTEGER.test(limitRaw)) b.info.limit = Number(limitRaw);
    }
    const remaining =
      remainingRaw !== undefined && INTEGER.test(remainingRaw) ? Number(remainingRaw) : undefined;
    if (remaining !== undefined) b.info.remaining = Math.min(b.info.remaining ?? Infinity, remaining);
    if (resetRaw === undefined) continue;
    const wait = resetWait(b, resetRaw, source);
    if (wait === undefined) continue;
    b.info.resetAt = b.now + wait;
    if (remaining === 0) {
      b.info.exhausted = true;
      addWait(b, wait, source);
    }
  }
}

/** Structured-field parameters `;k=v;k2=v2` → a map; undefined when malformed. */
function params(text: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const part of text.split(';').slice(1)) {
    const m = /^\s*([a-z*][a-z0-9_.*-]*)\s*=\s*("?)([^";]*)\2\s*$/.exec(part);
    if (!m) return undefined;
    out.set(m[1]!, m[3]!);
  }
  return out;
}

/** IETF RateLimit and RateLimit-Policy (draft-11 lists, draft-07 dictionary, drafts ≤ 06 fields). */
function ietf(b: Builder, h: Headers): void {
  for (const raw of values(h, 'ratelimit-policy').flatMap((v) => v.split(','))) {
    const name = /^\s*"([^"]*)"/.exec(raw)?.[1];
    const p = params(raw);
    const q = p?.get('q');
    const w = p?.get('w');
    if (name === undefined || !q || !INTEGER.test(q) || (w !== undefined && !INTEGER.test(w))) continue;
    b.info.policies.push({ name, quota: Number(q), windowSeconds: w === undefined ? 1 : Number(w) });
  }
  for (const field of values(h, 'ratelimit')) {
    if (/\b(limit|remaining|reset)\s*=/.test(field)) {
      const dict = new Map(
        field.split(',').map((kv) => {
          const [k, v] = kv.split('=').map((s) => s.trim());
          return [k ?? '', v ?? ''] as const;
        }),
      );
      const remaining = dict.get('remaining');
      const reset = dict.get('reset');
      if (!remaining || !INTEGER.test(remaining) || (reset !== undefined && !INTEGER.test(reset))) {
        b.info.warnings.push(`RateLimit "${field}" is malformed; ignored`);
        continue;
      }
      b.info.remaining = Math.min(b.info.remaining ?? Infinity, Number(remaining));
      if (Number(remaining) === 0) {
        b.info.exhausted = true;
        if (reset !== undefined) addWait(b, Number(reset) * 1000, 'ratelimit');
      }
      continue;
    }
    for (const item of field.split(',')) {
      const name = /^\s*"([^"]*)"/.exec(item)?.[1] ?? /^\s*([a-z*][a-z0-9_.*-]*)\s*(;|$)/i.exec(item)?.[1];
      const p = params(item);
      const r = p?.get('r');
      const t = p?.get('t');
      if (name === undefined || !p || !r || !INTEGER.test(r) || (t !== undefined && !INTEGER.test(t))) {
        b.info.warnings.push(`RateLimit item "${item.trim()}" is malformed; ignored`);
        continue;
      }
      if (Number(r) > 0) continue;
      b.info.exhausted = true;
      const seconds =
        t !== undefined ? Number(t) : b.info.policies.find((x) => x.name === name)?.windowSeconds;
      if (seconds !== undefined) addWait(b, seconds * 1000, 'ratelimit');
    }
  }
  const remaining = first(h, 'ratelimit-remaining');
  const reset = first(h, 'ratelimit-reset');
  const limit = first(h, 'ratelimit-limit');
  if (limit && INTEGER.test(limit)) b.info.limit = Number(limit);
  if (remaining && INTEGER.test(remaining)) {
    b.info.remaining = Math.min(b.info.remaining ?? Infinity, Number(remaining));
    if (Number(remaining) === 0) {
      b.info.exhausted = true;
      const seconds = reset === undefined ? undefined : wholeNumber(b, reset, 'ratelimit-reset');
      if (seconds !== undefined) addWait(b, seconds * 1000, 'ratelimit-reset');
    }
  }
}

export function parseRateLimit(
  status: number,
  headers: Headers,
  now: number,
  options: ParseOptions = {},
): RateLimitInfo {
  const info: RateLimitInfo = {
    waitMs: undefined,
    remaining: undefined,
    limit: undefined,
    windowSeconds: undefined,
    resetAt: undefined,
    exhausted: status === 429,
    policies: [],
    sources: [],
    warnings: [],
  };
  const dateRaw = first(headers, 'date');
  const serverNow = dateRaw ? parseHttpDate(dateRaw, now) : undefined;
  let skew = serverNow === undefined ? 0 : serverNow - now;
  if (Math.abs(skew) <= SKEW_THRESHOLD_MS) skew = 0;
  else info.warnings.push(`the server's clock differs from ours by ${Math.round(skew / 1000)} s`);
  const b: Builder = { now, skew, waits: [], info, options };
  retryAfter(b, headers);
  xRateLimit(b, headers);
  ietf(b, headers);
  if (b.waits.length > 0) {
    const max = Math.max(...b.waits.map((w) => w.ms));
    info.sources = [...new Set(b.waits.filter((w) => w.ms === max).map((w) => w.source))];
    const ceiling = options.ceilingMs ?? DAY_MS;
    if (max > ceiling) {
      info.warnings.push(
        `the server asked for ${Math.round(max / 1000)} s, implausibly long; clamped to ${ceiling / 1000} s`,
      );
      info.waitMs = ceiling;
    } else info.waitMs = max;
  }
  return info;
}
