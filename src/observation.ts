/** The one type that carries the flow: sources → observations → store → consumers (STYLE.md). */
export type ObservationSource = 'event' | 'poll';

export interface Observation {
  chargerId: string;
  stateId: number;
  /** ValueAsString; null when absent, "" when empty (CONTRACT §7). */
  value: string | null;
  /** Zaptec's timestamp, epoch milliseconds (truncated to ms). */
  observedAt: number;
  source: ObservationSource;
  /** The charger's device type when the source says so (Service Bus messages do). */
  deviceType?: number | undefined;
}

/** Zaptec sends this ChargerId for messages that belong to no charger; they are never stored. */
export const NULL_CHARGER_ID = '00000000-0000-0000-0000-000000000000';

/**
 * Measurements that change continuously while a charger works (temperatures, voltages, currents, power,
 * energy, the meter, the signal, the heartbeat pulse): a state read always finds them moved on, and no
 * schedule of reads keeps them fresh, so finding a new one is not a sign that the live events missed
 * something. Reconciliation learns from the other states only (CONTRACT §2 ZAPTEC_RECONCILE_MAX_MINUTES).
 */
export const MEASUREMENTS: ReadonlySet<number> = new Set([
  -1, 201, 202, 203, 204, 205, 206, 501, 502, 503, 507, 508, 509, 513, 515, 517, 553, 554, 809, 965,
]);

/** State ids the daemon reacts to. */
export const STATE = {
  isOnline: -2,
  pulse: -1,
  totalChargePower: 513,
  sessionEnergy: 553,
  signedMeterValue: 554,
  operationMode: 710,
  sessionIdentifier: 721,
  completedSession: 723,
  midPublicKey: 981,
  installationId: 800,
} as const;
