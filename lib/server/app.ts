// A standalone server: fastify with its pino logger, the tessera plugin, and
// the body limit applied to every route. A client must deliver its whole
// request (headers and body) within requestTimeoutMs, or Node answers 408 and
// closes the connection, so a client that trickles a body or never finishes
// it holds a socket for a bounded time only (fastify's default is no limit).
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';

import { TesseraError } from '../errors.js';
import { DEFAULTS } from './engine.js';
import { tessera, type TesseraPluginOptions } from './plugin.js';

/** Default time to receive a whole request, ms. */
export const REQUEST_TIMEOUT_MS = 30_000;

export interface ServeOptions extends TesseraPluginOptions {
  /** Time to receive a whole request (headers and body), ms (default 30000); a slower client gets 408. */
  requestTimeoutMs?: number;
}

export async function buildServer(options: ServeOptions = {}, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const { requestTimeoutMs = REQUEST_TIMEOUT_MS, ...plugin } = options;
  if (!(Number.isFinite(requestTimeoutMs) && requestTimeoutMs >= 1))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `requestTimeoutMs (--request-timeout-ms) must be a number of milliseconds >= 1, got ${requestTimeoutMs}`);
  const requestTimeout = Math.round(requestTimeoutMs);
  const app = Fastify({
    logger: true, bodyLimit: options.bodyLimit ?? DEFAULTS.bodyLimit, requestTimeout,
    // Node checks the request timeouts every connectionsCheckingInterval (default 30 s): check often enough to honour short limits.
    http: { requestTimeout, headersTimeout: Math.min(60_000, requestTimeout), connectionsCheckingInterval: Math.min(1000, Math.max(50, requestTimeout / 4)) },
    ...fastifyOptions,
  } as FastifyServerOptions);
  await app.register(tessera, { page: true, ...plugin });
  return app;
}
