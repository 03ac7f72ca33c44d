/** Errors of the client layer, with codes (zwave-js-server's habit): permanent ones are told apart. */

/** The budget, or the server, does not allow the request before `retryAt`, later than the caller can wait. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  readonly code = 'RATE_LIMITED';
  readonly group: string;
  readonly retryAt: number;
  readonly source: 'local' | 'server';
  constructor(group: string, retryAt: number, source: 'local' | 'server') {
    super(`API group ${group} allows no request before ${new Date(retryAt).toISOString()} (${source} limit)`);
    this.group = group;
    this.retryAt = retryAt;
    this.source = source;
  }
}

/** An HTTP answer the caller must deal with (4xx, or 5xx after the retries). Never carries the body. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  readonly code = 'HTTP_STATUS';
  readonly status: number;
  readonly method: string;
  readonly path: string;
  constructor(method: string, path: string, status: number) {
    super(`${method} ${path} answered ${status}`);
    this.status = status;
    this.method = method;
    this.path = path;
  }
  /** 4xx other than 408/429 will not change by asking again. */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** No answer: connection refused or reset, DNS, timeout. */
export class NetworkError extends Error {
  override name = 'NetworkError';
  readonly code: string;
  constructor(method: string, path: string, code: string, message: string) {
    super(`${method} ${path}: ${message}`);
    this.code = code;
  }
}

/** The credentials are wrong: no retry will help until someone changes them. */
export class CredentialsError extends Error {
  override name = 'CredentialsError';
  readonly code = 'BAD_CREDENTIALS';
}
