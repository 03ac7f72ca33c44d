/** The Service Bus client for one set of Zaptec connection details (servicebus.md P1), and its errors' codes. */
import { ServiceBusClient, type ServiceBusClientOptions } from '@azure/service-bus';
import { registerSecret } from '../log.js';
import type { ConnectionDetails } from './schemas.js';

/** The SDK's own retries, set explicitly (P1): quick recovery, errors reported within seconds. */
const RETRY_OPTIONS = { maxRetries: 2, retryDelayInMs: 1_000, timeoutInMs: 30_000 };

/** The client for one set of connection details, pointed at the override endpoint when there is one. */
export function serviceBusClient(
  details: ConnectionDetails,
  endpoint: URL | undefined,
  retryOptions: ServiceBusClientOptions['retryOptions'] = RETRY_OPTIONS,
): ServiceBusClient {
  registerSecret(details.Password);
  const credentials = `SharedAccessKeyName=${details.Username};SharedAccessKey=${details.Password}`;
  const options: ServiceBusClientOptions = { retryOptions };
  if (endpoint?.protocol === 'amqp:') {
    const host = endpoint.port ? endpoint.host : `${endpoint.hostname}:5672`;
    return new ServiceBusClient(`Endpoint=sb://${host}/;${credentials};UseDevelopmentEmulator=true`, options);
  }
  if (endpoint?.protocol === 'amqps:') options.customEndpointAddress = `sb://${endpoint.host}`;
  return new ServiceBusClient(`Endpoint=sb://${details.Host}/;${credentials}`, options);
}

/** The codes of an SDK error (an AggregateError's each). */
export function errorCodes(error: unknown): string[] {
  const all = error instanceof AggregateError ? error.errors : [error];
  return all.map((e) => String((e as { code?: unknown }).code ?? (e as Error)?.name ?? 'Error'));
}
