// LANTERN (arXiv 2410.03355; spec section 3): relaxed speculative acceptance
// over codebook-latent neighbourhoods. Image tokens whose codes lie close in
// latent space are nearly interchangeable, so a draft x is accepted with
// probability min(1, (p(x) + c)/q(x)), c the target mass of the longest
// prefix of x's k nearest codes with mass ≤ δ (A_{k,δ}). On rejection the
// replacement follows norm(max(0, p − q')), q' the proposal with x's k + 1
// nearest codes zeroed when A is not empty: the official rule
// (ea_model_llamagen.py evaluate_posterior_v1; test/official-speculative.test.ts
// checks it against the official function). Lossy by design; δ = 0 or k = 0
// is exact speculative sampling.
//
// LANTERN++ (arXiv 2502.06352) bounds the moved mass multiplicatively,
// c ≤ (λ − 1)·p(x): option `lambda` (> 1), which the official code reads from
// lantern_delta > 1.
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
  /** Neighbour table of the tokenizer's codebook (vqNeighbourTable); at least k wide (k + 1 for the full rejection rule). */
  table: NeighbourTable;
  /** Neighbours walked per draft (default min(1000, the table width); a rejection zeroes q on min(k + 1, width) of them). */
  k?: number;
  /** Total-variation budget in [0, 1] (default 0.1; not with lambda). */
  delta?: number;
  /** LANTERN++'s multiplicative bound λ > 1: moved mass ≤ (λ − 1)·p(x) (replaces delta). */
  lambda?: number;
  /** A smaller LlamaGen to draft with; absent: Jacobi drafts. */
  drafter?: LlamaGenGpt;
}

/**
 * LANTERN's offline table for walking k neighbours, from a LlamaGen VQ
 * checkpoint: the k + 1 nearest codes of every code (k walked, the next one
 * also zeroed by the rejection rule; at most V − 1), by L2 over the raw
 * codebook (quantize.embedding.weight), as the official generate_codebook.py;
 * built once per tokenizer with the native GEMM.
 */
export function vqNeighbourTable(tensors: Tensors, file: string, k: number): Promise<NeighbourTable> {
  const codebook = new WeightReader(tensors, file).f32('quantize.embedding.weight');
  return codebookNeighbours(codebook, Math.min(k + 1, codebook.shape[0]! - 1));
}

export async function generateLantern(model: LlamaGenGpt, options: LanternOptions): Promise<Generated> {
  const { table, drafter, k: _k, delta: _d, lambda: _l, ...rest } = options;
  const k = options.k ?? Math.min(LANTERN_K, table.width);
  const { lambda } = options;
  if (!Number.isInteger(k) || k < 0 || k > table.width)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `LANTERN k must be an integer in 0..${table.width} (the table width), got ${k}`);
  if (lambda !== undefined && options.delta !== undefined)
    throw new TesseraError('ERR_INVALID_ARGUMENT', 'give LANTERN either delta (additive bound) or lambda (LANTERN++ multiplicative bound), not both');
  if (lambda !== undefined && !(Number.isFinite(lambda) && lambda > 1))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `LANTERN++ lambda must be a finite number > 1, got ${lambda}`);
  // The native rule reads a bound > 1 as λ (as the official code reads lantern_delta).
  const delta = lambda ?? options.delta ?? LANTERN_DELTA;
  if (lambda === undefined && !(Number.isFinite(delta) && delta >= 0 && delta <= 1))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `LANTERN delta must be in [0, 1], got ${delta} (for LANTERN++'s multiplicative bound use lambda > 1)`);
  if (table.vocabulary !== model.config.vocabulary)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `the neighbour table covers ${table.vocabulary} codes, the model predicts ${model.config.vocabulary}`);
  const relax = { table, k, delta };
  return drafter ? generateWithDraft(model, drafter, { ...rest, relax }) : generateSjd(model, { ...rest, relax });
}
