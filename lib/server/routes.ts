// HTTP routes over the engine. Errors are llama.cpp-shaped
// ({"error":{"code","type","message"}}); a full queue is 429 + Retry-After,
// a request past its time limit 504, a body over the limit 413, a server
// without models or shutting down 503. A client that disconnects aborts its
// request's signal, which drops it from the queue or its cohort.
import type { IncomingMessage } from 'node:http';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { TesseraError } from '../errors.js';
import { lookAt, type PinholeCamera } from '../splat/camera.js';
import type { EditRequest, GenerateRequest, ImageResult, Progress, RenderRequest, TesseraEngine } from './engine.js';
import { NO_MODELS } from './models.js';
import { DrainingError, QueueFullError } from './scheduler.js';
import { editSchema, generateSchema, renderSchema } from './schemas.js';
import { APP_JS, ICON_SVG, indexHtml, STYLE_CSS } from './web/page.js';
import { sceneView } from './web/scene-view.js';

/** The client closed its connection before the answer. */
export class ClientGoneError extends Error {
  constructor() { super('the client disconnected'); this.name = 'ClientGoneError'; }
}

interface HttpError { status: number; type: string; message: string; headers?: Record<string, string> }

export function httpError(e: unknown, timeoutMs: number): HttpError {
  if (e instanceof QueueFullError) return { status: 429, type: 'overloaded', message: e.message, headers: { 'retry-after': String(e.retryAfterSeconds) } };
  if (e instanceof DrainingError) return { status: 503, type: 'unavailable', message: e.message, headers: { 'retry-after': '5' } };
  if (e instanceof ClientGoneError) return { status: 499, type: 'cancelled', message: e.message };
  if (e instanceof DOMException && e.name === 'TimeoutError') return { status: 504, type: 'timeout', message: `the request did not finish within ${timeoutMs} ms` };
  if (e instanceof TesseraError) {
    if (e.message === NO_MODELS) return { status: 503, type: 'unavailable', message: e.message };
    if (['ERR_INVALID_ARGUMENT', 'ERR_SHAPE', 'ERR_FORMAT'].includes(e.code)) return { status: 400, type: 'invalid_request', message: e.message };
  }
  return { status: 500, type: 'internal', message: (e as Error)?.message ?? String(e) };
}

function sendError(reply: FastifyReply, err: HttpError): FastifyReply {
  return reply.code(err.status).headers(err.headers ?? {}).send({ error: { code: err.status, type: err.type, message: err.message } });
}

interface Body {
  model?: string; class?: number; count?: number; cfg?: number; top_k?: number; top_p?: number; temperature?: number; seed?: number;
  decode?: 'ar' | 'sjd'; window?: number; more_smooth?: boolean; preview?: boolean;
  image?: string; box?: [number, number, number, number]; mode?: 'inpaint' | 'outpaint';
}

function generateRequest(b: Body): GenerateRequest {
  return {
    model: b.model, classes: new Array<number>(b.count ?? 1).fill(b.class ?? -1), cfg: b.cfg, topK: b.top_k, topP: b.top_p,
    temperature: b.temperature, seed: b.seed, decode: b.decode, window: b.window, moreSmooth: b.more_smooth, preview: b.preview,
  };
}

function wants(req: FastifyRequest, type: string): boolean {
  return (req.headers.accept ?? '').split(',').some((t) => t.trim().split(';')[0] === type);
}

function imageJson(r: ImageResult): object {
  return {
    model: r.model,
    images: r.images.map((png, b) => ({ png_base64: png.toString('base64'), seed: r.seeds[b], tokens: r.tokens[b] })),
    ...(r.stats ? { stats: r.stats } : {}),
  };
}

/**
 * Reads and drops what is left of a request body (at most maxBytes, for at
 * most maxMs) before a 413 is sent. fastify closes the connection after a
 * body error; closing a socket with unread input sends a TCP reset, which can
 * destroy the answer before a client that writes its whole body before
 * reading gets to it (the load test saw ~10% of 9 MiB uploads end that way).
 * This is nginx's lingering close, bounded.
 */
function drainBody(req: IncomingMessage, maxBytes: number, maxMs: number): Promise<void> {
  if (req.complete || req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (): void => {
      clearTimeout(timer);
      req.off('data', onData).off('end', done).off('close', done).off('error', done);
      resolve();
    };
    const onData = (chunk: Buffer): void => { bytes += chunk.length; if (bytes > maxBytes) done(); };
    const timer = setTimeout(done, maxMs);
    req.on('data', onData).once('end', done).once('close', done).once('error', done);
    req.resume();
  });
}

/**
 * An AbortSignal that fires when the client goes away or the time limit
 * passes. The timer is cleared when the response closes: an
 * AbortSignal.timeout would keep the signal, its listeners and the request's
 * state alive for the whole limit after the answer (the load test saw the
 * heap grow by that backlog).
 */
function requestSignal(reply: FastifyReply, timeoutMs: number): AbortSignal {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException(`the request did not finish within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs).unref();
  reply.raw.on('close', () => {
    clearTimeout(timer);
    if (!reply.raw.writableFinished) ctl.abort(new ClientGoneError());
  });
  return ctl.signal;
}

export async function tesseraRoutes(app: FastifyInstance, engine: TesseraEngine, { page = false }: { page?: boolean } = {}): Promise<void> {
  const { timeoutMs, bodyLimit, maxCount } = engine.options;
  const m = engine.metrics;

  app.setErrorHandler(async (err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    if (err.validation) {
      // ajv names an unknown key only in params.propertyName (schemas.ts refuses unknown fields by propertyNames).
      const unknown = (err.validation as { params?: { propertyName?: string } }[]).find((v) => v.params?.propertyName)?.params?.propertyName;
      return sendError(reply, { status: 400, type: 'invalid_request', message: unknown ? `unknown field ${unknown}` : err.message });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      if (err.statusCode === 413) await drainBody(req.raw, 8 * bodyLimit, 2000);
      return sendError(reply, { status: err.statusCode, type: err.statusCode === 413 ? 'too_large' : 'invalid_request', message: err.message });
    }
    return sendError(reply, httpError(err, timeoutMs));
  });
  // SSE answers are counted once, with their outcome, where the stream ends (their HTTP status is always 200).
  const streamed = new WeakSet<FastifyRequest>();
  app.addHook('onResponse', async (req, reply) => {
    if (streamed.has(req)) return;
    m.requests.inc({ endpoint: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
  });

  app.get('/health', async () => ({ status: 'ok', event_loop_delay_ms: engine.metrics.eventLoopDelayMs() }));

  app.get('/ready', async (_req, reply) => {
    const why = engine.scheduler.draining ? 'shutting down' : engine.registry.notReady;
    if (why) return sendError(reply, { status: 503, type: 'unavailable', message: why });
    return {
      status: 'ready',
      models: [...engine.registry.models.values()].map((x) => ({
        name: x.name, family: x.family, classes: x.classes, image_size: x.imageSide,
        ...(x.classNames ? { class_names: x.classNames } : {}),
        ...(x.sampling ? { sampling: { cfg: x.sampling.cfg, top_k: x.sampling.topK, top_p: x.sampling.topP } } : {}),
      })),
      scenes: [...engine.registry.scenes.keys()],
    };
  });

  // Saturation apart from readiness (llama.cpp's /slots?fail_on_no_slot): 503 when a new request would get 429.
  app.get('/saturation', async (_req, reply) => {
    const s = engine.scheduler, body = { waiting: s.waiting, running: s.running, max_queue: engine.options.maxQueue };
    return s.waiting >= engine.options.maxQueue ? reply.code(503).header('retry-after', String(s.retryAfter())).send(body) : body;
  });

  app.get('/metrics', async (_req, reply) => reply.type(m.registry.contentType).send(await m.registry.metrics()));

  // Each scene with a centre and radius to frame it (the web page's orbit view).
  app.get('/v1/scenes', async () => ({ scenes: [...engine.registry.scenes].map(([id, s]) => sceneView(id, s)) }));

  // The web page (lib/server/web): static HTML, script and style; no inline code, so a strict CSP.
  if (page) {
    const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'";
    const html = indexHtml(app.prefix);
    const asset = (type: string, body: string) => async (_req: FastifyRequest, reply: FastifyReply) => reply.type(type).header('x-content-type-options', 'nosniff').send(body);
    app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').headers({ 'content-security-policy': csp, 'x-content-type-options': 'nosniff' }).send(html));
    app.get('/web/app.js', asset('text/javascript; charset=utf-8', APP_JS));
    app.get('/web/style.css', asset('text/css; charset=utf-8', STYLE_CSS));
    app.get('/web/icon.svg', asset('image/svg+xml', ICON_SVG));
  }

  const imageRoute = (path: string, schema: object, start: (b: Body, signal: AbortSignal, onProgress?: (p: Progress) => void) => Promise<ImageResult>) =>
    app.post<{ Body: Body }>(path, { schema: { body: schema }, bodyLimit }, async (req, reply) => {
      const t0 = performance.now();
      const sse = wants(req, 'text/event-stream'), png = !sse && wants(req, 'image/png') && !wants(req, 'application/json');
      if (png && (req.body.count ?? 1) > 1)
        return sendError(reply, { status: 406, type: 'invalid_request', message: 'a PNG response holds one image; ask for application/json when count > 1' });
      const signal = requestSignal(reply, timeoutMs);
      let first = true;
      let stream: ((event: string, data: unknown) => void) | undefined;
      const onProgress = (p: Progress): void => {
        if (first) { first = false; m.timeToFirstProgress.observe((performance.now() - t0) / 1000); }
        stream?.('progress', { step: p.step, steps: p.steps, unit: p.unit, acceptance_rate: p.acceptanceRate, previews: p.previews });
      };
      let pending: Promise<ImageResult>;
      try {
        pending = start(req.body, signal, onProgress);
      } catch (e) {
        return sendError(reply, httpError(e, timeoutMs));
      }
      const finish = (): void => { m.e2eLatency.observe({ endpoint: path }, (performance.now() - t0) / 1000); };
      if (!sse) {
        try {
          const r = await pending;
          finish();
          if (png) return reply.type('image/png').header('x-seed', String(r.seeds[0])).send(r.images[0]);
          return imageJson(r);
        } catch (e) {
          if (signal.aborted && e === signal.reason && e instanceof ClientGoneError) m.cancelled.inc({ reason: 'client' });
          return sendError(reply, httpError(e, timeoutMs));
        }
      }
      // SSE: progress events, then `result` (or `error`), then [DONE] (the OpenAI-style end).
      reply.hijack();
      streamed.add(req);
      let outcome = 200;
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      stream = (event, data) => { if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`); };
      const keepAlive = setInterval(() => { if (!res.writableEnded) res.write(': keep-alive\n\n'); }, 15_000);
      try {
        stream('result', imageJson(await pending));
        finish();
      } catch (e) {
        if (e instanceof ClientGoneError) m.cancelled.inc({ reason: 'client' });
        const err = httpError(e, timeoutMs);
        outcome = err.status;
        stream('error', { error: { code: err.status, type: err.type, message: err.message } });
      } finally {
        clearInterval(keepAlive);
        if (!res.writableEnded) res.end('data: [DONE]\n\n');
        m.requests.inc({ endpoint: path, code: String(outcome) });
      }
      return reply;
    });

  imageRoute('/v1/generate', generateSchema(maxCount), (b, signal, onProgress) => engine.generate(generateRequest(b), signal, onProgress));

  imageRoute('/v1/edit', editSchema(maxCount), (b, signal, onProgress) => {
    const { decode: _d, window: _w, ...g } = generateRequest(b);
    const r: EditRequest = { ...g, image: Buffer.from(b.image!, 'base64'), box: b.box!, mode: b.mode };
    return engine.edit(r, signal, onProgress);
  });

  app.post<{ Body: RenderBody }>('/v1/render', { schema: { body: renderSchema }, bodyLimit }, async (req, reply) => {
    const t0 = performance.now();
    const b = req.body;
    try {
      const r: RenderRequest = { scene: b.scene, camera: camera(b.camera), background: b.background, mode: b.mode, shDegree: b.sh_degree };
      const out = await engine.render(r, requestSignal(reply, timeoutMs));
      m.e2eLatency.observe({ endpoint: '/v1/render' }, (performance.now() - t0) / 1000);
      if (wants(req, 'application/json')) return { width: out.width, height: out.height, png_base64: out.png.toString('base64'), stats: out.stats };
      return reply.type('image/png').send(out.png);
    } catch (e) {
      return sendError(reply, httpError(e, timeoutMs));
    }
  });
}

interface RenderBody {
  scene: string;
  camera: { eye?: [number, number, number]; target?: [number, number, number]; up?: [number, number, number]; fov_y_degrees?: number;
    fx?: number; fy?: number; cx?: number; cy?: number; width: number; height: number; world_to_camera?: number[] };
  background?: [number, number, number];
  mode?: 'classic' | 'antialiased';
  sh_degree?: number;
}

function camera(c: RenderBody['camera']): PinholeCamera {
  if (c.eye && c.target)
    return lookAt(c.eye, c.target, { width: c.width, height: c.height, up: c.up, fovY: c.fov_y_degrees !== undefined ? (c.fov_y_degrees * Math.PI) / 180 : undefined });
  return { fx: c.fx!, fy: c.fy!, cx: c.cx!, cy: c.cy!, width: c.width, height: c.height, worldToCamera: c.world_to_camera! };
}
