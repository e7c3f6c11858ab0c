// A server over the tiny fixture models (VAR test/fixtures/var, LlamaGen
// test/fixtures/llamagen at 12 px = a 6x6 token grid) and a synthetic scene.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';

import { writeScene } from '../lib/io/scene-file.js';
import { buildServer } from '../lib/server/app.js';
import type { TesseraPluginOptions } from '../lib/server/plugin.js';
import { syntheticScene } from '../lib/splat/synthetic.js';

const root = join(import.meta.dirname, 'fixtures');

export function sceneFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tessera-server-')), 'ball.ply');
  writeScene(path, { kind: 'gaussians', scene: syntheticScene({ count: 200, seed: 3 }), format: 'ply' });
  return path;
}

export const MODELS: TesseraPluginOptions['models'] = [
  { name: 'var', family: 'var', tokenizer: join(root, 'var', 'vae.pth'), weights: join(root, 'var', 'var.pth') },
  { name: 'llamagen', family: 'llamagen', tokenizer: join(root, 'llamagen', 'vq.pt'), weights: join(root, 'llamagen', 'gpt.pt'), imageSize: 12 },
];

/** A quiet server (logger off) over the fixtures; options override the defaults. */
export function fixtureServer(options: TesseraPluginOptions = {}): Promise<FastifyInstance> {
  return buildServer({ models: MODELS, scenes: { ball: sceneFile() }, ...options }, { logger: false });
}
