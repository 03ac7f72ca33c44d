/**
 * Vendor profiles are data: endpoint groups, each with windows, and the header conventions the vendor
 * documents. Nothing vendor-specific lives in the admission or retry code.
 */

/** A count per sliding window, or a token bucket (rate with a burst). */
export type WindowDef =
  | { kind: 'sliding'; limit: number; seconds: number }
  | { kind: 'bucket'; ratePerSecond: number; burst: number };

export interface GroupDef {
  name: string;
  /** Which requests belong to the group: methods (all when absent) and a path regex source. */
  match: { methods?: string[]; path: string };
  windows: WindowDef[];
  /**
   * The server's 429 says nothing about this group's long window (Zaptec answers `Retry-After: 1`
   * whatever the 30-minute state): after a second 429 in a row, block until the window frees.
   */
  blockOnRepeated429?: boolean;
}

/** How a vendor writes a reset time, when it says. */
export type ResetFormat = 'auto' | 'epoch-s' | 'epoch-ms' | 'delta-s' | 'delta-ms' | 'iso';

export interface HeaderConventions {
  resetFormat?: ResetFormat;
  /** Zone-less ISO times are UTC (Zaptec's own timestamps are zone-less). */
  zonelessIsUtc?: boolean;
}

export interface VendorProfile {
  vendor: string;
  groups: GroupDef[];
  headers: HeaderConventions;
  /**
   * Added to every sliding window's end: a request admitted exactly one window after another may reach
   * the server a little sooner than the other did, and must not land inside the server's window.
   */
  guardMs: number;
}

export function groupsFor(profile: VendorProfile, method: string, path: string): GroupDef[] {
  return profile.groups.filter(
    (g) =>
      (!g.match.methods || g.match.methods.includes(method.toUpperCase())) &&
      new RegExp(g.match.path).test(path),
  );
}

/** The longest window of a group, in ms (a bucket's is the time it takes to refill). */
export function longestWindowMs(group: GroupDef): number {
  return Math.max(
    0,
    ...group.windows.map((w) =>
      w.kind === 'sliding' ? w.seconds * 1000 : (w.burst / w.ratePerSecond) * 1000,
    ),
  );
}

/**
 * The same contract with every window shortened by `factor` (tests run Zaptec's 30 minutes in seconds).
 * The guard is not scaled: it covers network jitter, which does not shrink with the windows.
 */
export function scaleProfile(profile: VendorProfile, factor: number): VendorProfile {
  return {
    ...profile,
    groups: profile.groups.map((g) => ({
      ...g,
      windows: g.windows.map((w) =>
        w.kind === 'sliding'
          ? { ...w, seconds: w.seconds * factor }
          : { ...w, ratePerSecond: w.ratePerSecond / factor },
      ),
    })),
  };
}
