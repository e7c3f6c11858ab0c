// The fastify plugin: `app.register(tessera, options)` loads the models and
// scenes, decorates `app.tessera` (the engine) and serves the routes. It is
// fastify-plugin wrapped so the decorator reaches the parent app; the routes
// and their error handler sit in their own encapsulated child, so an
// existing app keeps its own error handling. onClose drains queued and
// running requests, then frees the models.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

import { TesseraEngine, type ServerOptions } from './engine.js';
import { tesseraRoutes } from './routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    tessera: TesseraEngine;
  }
}

export interface TesseraPluginOptions extends ServerOptions {
  /** Route prefix inside the host app (default none). */
  prefix?: string;
  /** Serve the web page at the prefix's root (`/`, `/web/*`): default off in a host app, on in buildServer/`tessera serve`. */
  page?: boolean;
}

const plugin: FastifyPluginAsync<TesseraPluginOptions> = async (app: FastifyInstance, opts) => {
  const engine = new TesseraEngine(opts);
  app.decorate('tessera', engine);
  app.addHook('onClose', async () => { await engine.close(); });
  try {
    await engine.load(opts.models ?? [], opts.scenes ?? {});
  } catch (e) {
    app.log.error({ err: e }, 'tessera: loading failed; /ready answers 503 with the reason');
  }
  await app.register(async (child) => tesseraRoutes(child, engine, { page: opts.page ?? false }), { prefix: opts.prefix });
};

export const tessera = fp(plugin, { name: 'tessera', fastify: '5.x' });
export default tessera;
