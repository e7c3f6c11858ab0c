// `tessera serve`: the HTTP server (lib/server) on one port, with graceful
// shutdown on SIGTERM/SIGINT: stop accepting, drain queued and running
// requests, free the models, exit.
import { readFileSync } from 'node:fs';

import { TesseraError } from '../errors.js';
import { embeddedModel } from '../models/embedded.js';
import { buildServer, type ServeOptions } from '../server/app.js';
import type { ModelSpec } from '../server/models.js';
import type { TesseraPluginOptions } from '../server/plugin.js';
import { demoScene } from '../server/web/demo-scene.js';
import { parseArgs, type Command } from './args.js';
import { numberFlag } from './generate.js';

const VALUED = ['host', 'port', 'config', 'var-tokenizer', 'var-weights', 'llamagen-tokenizer', 'llamagen-weights', 'llamagen-image-size',
  'max-batch', 'max-wait-ms', 'max-queue', 'timeout-ms', 'body-limit', 'request-timeout-ms'];

/** --scene is repeatable, which parseArgs' single-valued map cannot hold. */
function sceneFlags(argv: readonly string[]): { scenes: Record<string, string>; rest: string[] } {
  const scenes: Record<string, string> = {}, rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a !== '--scene' && !a.startsWith('--scene=')) { rest.push(a); continue; }
    const v = a.startsWith('--scene=') ? a.slice(8) : argv[++i];
    const eq = v?.indexOf('=') ?? -1;
    if (v === undefined || eq <= 0 || eq === v.length - 1) throw new TesseraError('ERR_INVALID_ARGUMENT', `--scene needs id=path, got ${String(v)}`);
    scenes[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return { scenes, rest };
}

type Config = ServeOptions & { host?: string; port?: number };

/** The --config file: { models: ModelSpec[], scenes: {id: path}, maxBatch, maxWaitMs, maxQueue, timeoutMs, bodyLimit, requestTimeoutMs, host, port }. */
function readConfig(path: string): Config {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Config;
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot read the config ${path}: ${(e as Error).message}`);
  }
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'HTTP server: batched generation, editing, rendering, SSE progress, metrics',
  usage: `Usage: tessera serve [--host 127.0.0.1] [--port 8080] [--config <file.json>]
         [--var-tokenizer <vae> --var-weights <var>]
         [--llamagen-tokenizer <vq> --llamagen-weights <gpt> [--llamagen-image-size 256]]
         [--scene id=path ...] [--max-batch 8] [--max-wait-ms 5] [--max-queue 64]
         [--timeout-ms 120000] [--body-limit 8388608] [--request-timeout-ms 30000]

Endpoints: POST /v1/generate, /v1/edit, /v1/render; GET /health (alive),
/ready (models loaded, else 503 with the reason), /saturation (503 when
the queue is full), /metrics (Prometheus), /v1/scenes (scenes and where to
look at them from), and / (a web page to try it: generate with live
progress, orbit a scene). Accept: text/event-stream streams progress. A full
queue answers 429 with Retry-After; a request past --timeout-ms 504; a body
over --body-limit 413; a client that has not sent its whole request within
--request-timeout-ms 408.

Name model files here or in --config ({"models": [{"name", "family":
"var"|"llamagen", "tokenizer", "weights", "imageSize"}], "scenes":
{"id": "path"}, ...the limits}). With no model named, the server loads the
embedded tiny VAR (models/tiny-var, as "tiny-var", with its class names and
sampling settings); with no scene named, a procedural demo scene ("demo").
Command-line flags override the config file. Models load as "var" and
"llamagen"; requests pick one with "model" (default: the first).

--max-batch counts images per batched step; a render view counts one per
started megapixel. Each VAR model keeps up to 64 MiB of conditionings (by
class list) and 64 MiB of KV caches between batches.

Native work runs on the engine's own thread pool; the event loop only
schedules it (its delay is exported as tessera_event_loop_delay_seconds).`,
  async run(argv) {
    const { scenes, rest } = sceneFlags(argv);
    const args = parseArgs(rest, VALUED);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    if (args.positional.length > 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `unexpected argument ${args.positional[0]}`);
    const f = args.flags;
    const config = typeof f.get('config') === 'string' ? readConfig(f.get('config') as string) : {};
    const models: ModelSpec[] = [...(config.models ?? [])];
    const pair = (family: 'var' | 'llamagen'): void => {
      const tok = f.get(`${family}-tokenizer`), w = f.get(`${family}-weights`);
      if (tok === undefined && w === undefined) return;
      if (typeof tok !== 'string' || typeof w !== 'string') throw new TesseraError('ERR_INVALID_ARGUMENT', `--${family}-tokenizer and --${family}-weights go together`);
      models.push({ name: family, family, tokenizer: tok, weights: w, imageSize: family === 'llamagen' ? numberFlag(f, 'llamagen-image-size', 256, true) : undefined });
    };
    pair('var');
    pair('llamagen');
    if (models.length === 0) {
      const e = embeddedModel();
      models.push({ name: 'tiny-var', family: 'var', tokenizer: e.tokenizer, weights: e.weights, classNames: e.classes, sampling: e.sampling });
    }
    const sceneMap: NonNullable<TesseraPluginOptions['scenes']> = { ...(config.scenes ?? {}), ...scenes };
    if (Object.keys(sceneMap).length === 0) sceneMap.demo = demoScene();
    const num = (name: string, fallback: number | undefined): number | undefined => (f.has(name) ? numberFlag(f, name, 0, true) : fallback);
    const options: ServeOptions = {
      models, scenes: sceneMap,
      maxBatch: num('max-batch', config.maxBatch), maxWaitMs: num('max-wait-ms', config.maxWaitMs), maxQueue: num('max-queue', config.maxQueue),
      timeoutMs: num('timeout-ms', config.timeoutMs), bodyLimit: num('body-limit', config.bodyLimit),
      requestTimeoutMs: num('request-timeout-ms', config.requestTimeoutMs),
    };
    const host = typeof f.get('host') === 'string' ? (f.get('host') as string) : (config.host ?? '127.0.0.1');
    const port = num('port', config.port) ?? 8080;
    const app = await buildServer(options);
    const why = app.tessera.registry.notReady;
    if (why?.startsWith('loading failed')) {
      await app.close();
      throw new TesseraError('ERR_IO', why);
    }
    if (why) app.log.warn(why);
    let stopped: Promise<number> | undefined;
    const stop = (signal: string): Promise<number> => {
      stopped ??= (async () => {
        app.log.info({ signal }, 'shutting down: draining in-flight requests');
        try {
          await app.close();
          app.log.info('stopped');
          return 0;
        } catch (e) {
          app.log.error({ err: e }, 'shutdown failed');
          return 1;
        }
      })();
      return stopped;
    };
    const signalled = new Promise<number>((resolve) => {
      process.once('SIGTERM', () => resolve(stop('SIGTERM')));
      process.once('SIGINT', () => resolve(stop('SIGINT')));
    });
    await app.listen({ host, port });
    return signalled;
  },
};
