/**
 * zod schemas for the Zaptec payloads of zaptec-api.md §2 and §5. They require only what the daemon
 * uses and keep every other field (the whole object goes into `data`). List items are checked one by
 * one, so one bad item is skipped and the rest of the page is kept.
 */
import { z } from 'zod';

const guid = z.string().min(1);
const optionalText = z.string().nullish();
const optionalInt = z.number().int().nullish();

export const pageSchema = z.looseObject({
  Pages: z.number().int().nonnegative(),
  Data: z.array(z.unknown()),
});

export const installationSchema = z.looseObject({
  Id: guid,
  Name: optionalText,
  Active: z.boolean().nullish(),
  MessagingEnabled: z.boolean().nullish(),
});
export type Installation = z.infer<typeof installationSchema>;

export const chargerSchema = z.looseObject({
  Id: guid,
  DeviceId: optionalText,
  Name: optionalText,
  DeviceType: optionalInt,
  InstallationId: optionalText,
  CircuitId: optionalText,
  Active: z.boolean().nullish(),
});
export type Charger = z.infer<typeof chargerSchema>;

const hierarchyChargerSchema = z.looseObject({
  Id: guid,
  DeviceId: optionalText,
  Name: optionalText,
  DeviceType: optionalInt,
  Active: z.boolean().nullish(),
});

export const circuitSchema = z.looseObject({
  Id: guid,
  Name: optionalText,
  MaxCurrent: z.number().nullish(),
  IsActive: z.boolean().nullish(),
  Chargers: z.array(z.unknown()).nullish(),
});

export const hierarchySchema = z.looseObject({
  Id: guid,
  Name: optionalText,
  Circuits: z.array(z.unknown()).nullish(),
});
export { hierarchyChargerSchema };
export type HierarchyCharger = z.infer<typeof hierarchyChargerSchema>;
export type Circuit = z.infer<typeof circuitSchema>;

export const observationSchema = z.looseObject({
  ChargerId: guid,
  StateId: z.number().int(),
  Timestamp: z.string().min(1),
  ValueAsString: z.string().nullish(),
});
export type ApiObservation = z.infer<typeof observationSchema>;

export const constantsSchema = z.looseObject({
  Observations: z.record(z.string(), z.number().int()).nullish(),
  Schema: z
    .record(
      z.string(),
      z.looseObject({
        DeviceType: z.number().int().nullish(),
        ObservationIds: z.record(z.string(), z.number().int()).nullish(),
      }),
    )
    .nullish(),
});
export type Constants = z.infer<typeof constantsSchema>;

export const connectionDetailsSchema = z.looseObject({
  Type: z.number().int().nullish(),
  Host: z.string().min(1),
  Port: z.number().int().nullish(),
  UseSSL: z.boolean().nullish(),
  Username: z.string().min(1),
  Password: z.string().min(1),
  Topic: z.string().min(1),
  Subscription: z.string().min(1),
});
export type ConnectionDetails = z.infer<typeof connectionDetailsSchema>;

export const tokenSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string().refine((t) => t.toLowerCase() === 'bearer', 'token_type is not bearer'),
  expires_in: z.number().positive().nullish(),
});

/** A charge-history session: any object; the session store reads what it can of it (CONTRACT §8 bad input). */
export const chargeHistoryItemSchema = z.looseObject({});
