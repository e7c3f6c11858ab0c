// The model of a batch job: the embedded tiny VAR or a VAR tokenizer/weights
// pair. Submit records each file's size and SHA-256; a worker loads its own
// copy (the embedded one of its package, the spec's paths, or --tokenizer/
// --weights) and refuses to start when a hash differs, because a different
// file would silently write different images under the same indices.
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { resolve } from 'node:path';

import { TesseraError } from '../errors.js';
import { embeddedModel } from '../models/embedded.js';
import { loadVar, type VarPipeline } from '../models/var/load.js';
import type { BatchSpec, ModelFile } from './spec.js';

export async function describeFile(path: string): Promise<ModelFile> {
  const abs = resolve(path);
  let bytes: number;
  try {
    bytes = statSync(abs).size;
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot read the model file ${abs}: ${(e as Error).message}`);
  }
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(abs)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot read the model file ${abs}: ${(e as Error).message}`);
  }
  return { path: abs, bytes, sha256: hash.digest('hex') };
}

export interface ModelChoice {
  kind: 'embedded' | 'files';
  tokenizer: string;
  weights: string;
  /** Class names (embedded model). */
  names?: string[];
  /** Default sampling: the embedded model's evaluated settings, else generate()'s defaults. */
  sampling: BatchSpec['sampling'];
}

/** --model embedded (the default) or --tokenizer/--weights. */
export function chooseModel(model: string | undefined, tokenizer: string | undefined, weights: string | undefined): ModelChoice {
  if (tokenizer !== undefined || weights !== undefined) {
    if (model !== undefined) throw new TesseraError('ERR_INVALID_ARGUMENT', '--model and --tokenizer/--weights exclude each other; give one');
    if (tokenizer === undefined || weights === undefined) throw new TesseraError('ERR_INVALID_ARGUMENT', '--tokenizer and --weights go together (a VAR VQVAE and transformer)');
    return { kind: 'files', tokenizer: resolve(tokenizer), weights: resolve(weights), sampling: { cfg: 1.5, topK: 900, topP: 0.96, temperature: 1 } };
  }
  if (model !== undefined && model !== 'embedded')
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--model must be 'embedded' (or give --tokenizer and --weights for a VAR checkpoint), got ${JSON.stringify(model)}`);
  const e = embeddedModel();
  return { kind: 'embedded', tokenizer: e.tokenizer, weights: e.weights, names: e.classes, sampling: { ...e.sampling, temperature: 1 } };
}

/**
 * Loads the job's model on a worker: `override` gives local copies of the
 * files (another machine's paths); every file must match the spec's hash.
 */
export async function loadJobModel(spec: BatchSpec, override?: { tokenizer?: string; weights?: string }): Promise<VarPipeline> {
  const local = spec.model.kind === 'embedded' ? chooseModel(undefined, undefined, undefined) : spec.model;
  const paths = {
    tokenizer: override?.tokenizer ?? (typeof local.tokenizer === 'string' ? local.tokenizer : local.tokenizer.path),
    weights: override?.weights ?? (typeof local.weights === 'string' ? local.weights : local.weights.path),
  };
  for (const which of ['tokenizer', 'weights'] as const) {
    const want = spec.model[which], have = await describeFile(paths[which]);
    if (have.sha256 !== want.sha256)
      throw new TesseraError('ERR_INVALID_ARGUMENT',
        `${which} ${have.path} (sha256 ${have.sha256.slice(0, 12)}…, ${have.bytes} bytes) is not the file job ${spec.job} was submitted with ` +
        `(${want.path}, sha256 ${want.sha256.slice(0, 12)}…, ${want.bytes} bytes); give this machine's copy with --${which}`);
  }
  return loadVar(paths.tokenizer, paths.weights);
}
