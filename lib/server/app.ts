// A standalone server: fastify with its pino logger, the tessera plugin, and
// the body limit applied to every route.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';

import { DEFAULTS } from './engine.js';
import { tessera, type TesseraPluginOptions } from './plugin.js';

export async function buildServer(options: TesseraPluginOptions = {}, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: true, bodyLimit: options.bodyLimit ?? DEFAULTS.bodyLimit, ...fastifyOptions });
  await app.register(tessera, options);
  return app;
}
