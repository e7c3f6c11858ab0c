// LANTERN (arXiv 2410.03355; spec section 3): relaxed speculative acceptance
// over codebook-latent neighbourhoods. Image tokens whose codes lie close in
// latent space are nearly interchangeable, so a draft x is accepted with
// probability min(1, (p(x) + c)/q(x)), c the target mass of the longest
// prefix of x's k nearest codes with mass ≤ δ (A_{k,δ}): the accepted
// distribution is within total variation δ of p per position. Lossy by
// design; δ = 0 or k = 0 is exact speculative sampling.
//
// Drafts come from Jacobi iteration (SJD's loop, no extra model) or from a
// smaller LlamaGen (the draft-model loop); the rule is the same native
// verify_draft with the neighbour table below.
import { TesseraError } from '../errors.js';
import type { LlamaGenGpt } from '../models/llamagen/gpt.js';
import type { Generated } from '../models/llamagen/generate.js';
import type { Tensors } from '../models/var/config.js';
import { WeightReader } from '../models/var/weights.js';
import { generateWithDraft } from './draft.js';
import { generateSjd, type SjdOptions } from './sjd.js';
import { codebookNeighbours, type NeighbourTable } from './verify.js';

/** The paper's defaults: k = 1000 neighbours, δ = 0.1. */
export const LANTERN_K = 1000, LANTERN_DELTA = 0.1;

export interface LanternOptions extends Omit<SjdOptions, 'relax'> {
  /** Neighbour table of the tokenizer's codebook (vqNeighbourTable); at least k wide. */
  table: NeighbourTable;
  /** Neighbours walked per draft (default min(1000, the table width)). */
  k?: number;
  /** Total-variation budget (default 0.1). */
  delta?: number;
  /** A smaller LlamaGen to draft with; absent: Jacobi drafts. */
  drafter?: LlamaGenGpt;
}

/**
 * The `width` nearest codes of every code of a LlamaGen VQ checkpoint, by L2
 * over the raw codebook (quantize.embedding.weight), as LANTERN's offline
 * table; built once per tokenizer with the native GEMM.
 */
export function vqNeighbourTable(tensors: Tensors, file: string, width: number): Promise<NeighbourTable> {
  const codebook = new WeightReader(tensors, file).f32('quantize.embedding.weight');
  return codebookNeighbours(codebook, Math.min(width, codebook.shape[0]! - 1));
}

export async function generateLantern(model: LlamaGenGpt, options: LanternOptions): Promise<Generated> {
  const { table, drafter, ...rest } = options;
  const k = options.k ?? Math.min(LANTERN_K, table.width);
  const delta = options.delta ?? LANTERN_DELTA;
  if (!Number.isInteger(k) || k < 0 || k > table.width)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `LANTERN k must be an integer in 0..${table.width} (the table width), got ${k}`);
  if (!Number.isFinite(delta) || delta < 0 || delta > 1)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `LANTERN delta must be in [0, 1], got ${delta}`);
  if (table.vocabulary !== model.config.vocabulary)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `the neighbour table covers ${table.vocabulary} codes, the model predicts ${model.config.vocabulary}`);
  const relax = { table, k, delta };
  return drafter ? generateWithDraft(model, drafter, { ...rest, relax }) : generateSjd(model, { ...rest, relax });
}
