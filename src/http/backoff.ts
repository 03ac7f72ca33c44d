/** Full-jitter exponential backoff (AWS Architecture Blog): U(0, min(cap, base·2^attempt)). */
export interface Backoff {
  baseMs: number;
  capMs: number;
}

export function fullJitter(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(backoff.capMs, backoff.baseMs * 2 ** attempt));
}
