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
