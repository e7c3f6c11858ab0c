// `tessera bench llamagen`: LlamaGen class-conditional token generation at
// 256 px (16×16 tokens, CFG 2.0, top-k 2000) on a GPT-B-shaped random-weight
// checkpoint (and the tiny test fixture), per decoding mode (ar, sjd,
// lantern, draft with a smaller random drafter; nar on the same model with
// NAR's vertical head added) and weight compute (fp32,
// bf16 packed): ms per image, tokens/s, forward passes and acceptance (vLLM
// names), ms per forward pass against the weight-bandwidth floor (packed
// weight bytes / copy bandwidth measured in the same process), wall and CPU
// time, peak RSS. Each configuration runs in its own child process. The
// PyTorch reference (float32, same weights) decodes a few tokens plainly and
// is extrapolated to the image. VQ decoding is not timed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateWithDraft } from '../decoding/draft.js';
import { generateNar } from '../decoding/nar.js';
import { generateLantern, LANTERN_DELTA, LANTERN_K, vqNeighbourTable } from '../decoding/lantern.js';
import { generateSjd } from '../decoding/sjd.js';
import { TesseraError } from '../errors.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { generateAr, type DecodeStats, type Generated } from '../models/llamagen/generate.js';
import { LlamaGenGpt } from '../models/llamagen/gpt.js';
import { GPT_B, randomGptTensors } from '../models/llamagen/random_checkpoint.js';
import { native } from '../native.js';
import { randomUniform } from '../bench/timing.js';
import { getThreads } from '../runtime.js';
import { parseArgs, type Command } from './args.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..', '..', '..');
const PEER_SCRIPT = join(ROOT, 'scripts', 'reference', 'llamagen_bench.py');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'llamagen');
const PYTHON = '/usr/bin/python3';
const SAMPLING = { cfg: 2.0, topK: 2000, topP: 1, temperature: 1 };
const MODES = ['ar', 'sjd', 'lantern', 'draft', 'nar'] as const;
type Mode = typeof MODES[number];
/** The random drafter for GPT-B: 4 layers of dim 512 (8 heads), same vocabulary and classes. */
const DRAFT_B = { layers: 4, dim: 512, vocabulary: GPT_B.vocabulary, classes: GPT_B.classes };

interface WorkerCfg { weights: string; draft: string; codebook: string; nar: string; grid: number; batch: number; decode: Mode; compute: 'float32' | 'bfloat16'; seed: number; warmup: number }
interface RunResult {
  wallMs: number; cpuMs: number; stats: DecodeStats; weightBytes: number; draftWeightBytes?: number;
  copyGBs: number; readGBs: number; peakRssBytes: number; loadMs: number;
}
interface PeerResult { torch: string; threads: number; tokensTimed: number; prefillMs: number; msPerToken: number; cpuMsPerToken: number; extrapolatedMsPerImage: number; peakRssBytes: number }

async function worker(c: WorkerCfg): Promise<RunResult> {
  const files: Checkpoint[] = [];
  const t0 = performance.now();
  const open = (p: string): Checkpoint => { const f = openCheckpoint(p); files.push(f); return f; };
  const weights = c.decode === 'nar' ? c.nar : c.weights;
  const m = open(weights);
  const model = await LlamaGenGpt.load(m.tensors, weights, { extras: m.extras, compute: c.compute });
  let drafter: LlamaGenGpt | undefined;
  try {
    if (c.decode === 'draft') {
      const d = open(c.draft);
      drafter = await LlamaGenGpt.load(d.tensors, c.draft, { extras: d.extras, compute: c.compute });
    }
    const table = c.decode === 'lantern' ? await vqNeighbourTable(open(c.codebook).tensors, c.codebook, LANTERN_K) : undefined;
    const loadMs = performance.now() - t0;
    const options = { ...SAMPLING, classes: Array.from({ length: c.batch }, (_, b) => b % model.config.classes), grid: c.grid, seed: c.seed };
    const generate = (): Promise<Generated> => {
      if (c.decode === 'sjd') return generateSjd(model, options);
      if (c.decode === 'lantern') return generateLantern(model, { ...options, table: table!, delta: LANTERN_DELTA });
      if (c.decode === 'draft') return generateWithDraft(model, drafter!, options);
      if (c.decode === 'nar') return generateNar(model, options);
      return generateAr(model, options);
    };
    // Untimed images first: the steady state a server sees (KV caches and
    // scratch come back from the pool instead of being faulted in, JIT warm).
    for (let i = 0; i < c.warmup; i++) await generate();
    const cpu0 = process.cpuUsage(), w0 = performance.now();
    const r = await generate();
    const wallMs = performance.now() - w0, cpu = process.cpuUsage(cpu0);
    const peakRssBytes = process.resourceUsage().maxRSS * 1024;
    // The floor's bandwidth: one large copy in this process, after decoding (so its buffers stay out of the peak RSS).
    const copyGBs = await native().measureCopyBandwidth(getThreads(), 256 << 20);
    // And the streaming-read bandwidth over as many bytes as the weights: the
    // tighter floor for a pass that only reads them.
    const readGBs = await native().measureReadBandwidth(getThreads(), Math.max(model.weightBytes, 64 << 20));
    return {
      wallMs, cpuMs: (cpu.user + cpu.system) / 1000, stats: r.stats, weightBytes: model.weightBytes, draftWeightBytes: drafter?.weightBytes,
      copyGBs, readGBs, peakRssBytes, loadMs,
    };
  } finally {
    model.dispose();
    drafter?.dispose();
    for (const f of files) f.close();
  }
}

function peerStatus(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  if (!existsSync(PEER_SCRIPT)) return `${PEER_SCRIPT} not found (run from a source checkout)`;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${PYTHON} has no torch`;
}

function list(v: string | true | undefined, fallback: string): string[] {
  return (typeof v === 'string' ? v : fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 0)} MiB`;

export const benchLlamaGenCommand: Command = {
  name: 'llamagen',
  summary: 'LlamaGen decoding (GPT-B random weights, tiny fixture): ar/sjd/lantern/draft, fp32/bf16, vs the weight-bandwidth floor and PyTorch',
  usage: `Usage: tessera bench llamagen [--model B,tiny] [--decode ar,sjd,lantern,draft]
                              [--compute fp32,bf16] [--batch 1] [--image-size 256]
                              [--peer-tokens 8] [--warmup 1] [--no-peer] [--json]

B: a GPT-B-shaped random-weight checkpoint (12 layers, dim 768, 12 heads,
vocabulary 16384, 1000 classes; 111M parameters) written to a temporary
directory in the official key layout, with a random 4-layer dim-512 drafter
a random 16384x8 codebook for LANTERN's neighbour table, and for nar the
same model plus NAR's vertical head (one more block, medusa_norm,
medusa_output). tiny: the test fixtures (test/fixtures/llamagen: gpt.pt,
gpt_draft.pt, vq.pt, gpt_nar.pt).

Per model, mode and weight compute, in its own process: --warmup untimed
images (default 1: the steady state of a server, whose KV caches and scratch
come back from the pool), then one timed image of
--image-size / 16 squared tokens (256 px: 16x16), CFG ${SAMPLING.cfg}, top-k ${SAMPLING.topK}, seed 0;
ms per image and tokens/s (token generation; the VQ decode is not timed),
wall and CPU time, forward passes, vLLM's spec-decode counters, ms per
forward pass against the floor = packed weight bytes / copy bandwidth
(measured by the addon in the same process) and their ratio, and against
the read floor = the same bytes / streaming-read bandwidth (measured over as
many bytes in the same process), peak RSS.
The PyTorch peer (scripts/reference/llamagen_bench.py on ${PYTHON}, float32,
same weights, same thread count, greedy plain decoding with the same CFG
batch) times --peer-tokens tokens and extrapolates to the image (labelled);
skipped when torch is not importable. Random weights give near-flat
distributions: acceptance here is a floor, not what trained weights reach.`,
  async run(argv) {
    const args = parseArgs(argv, ['model', 'decode', 'compute', 'batch', 'image-size', 'peer-tokens', 'warmup', 'worker']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const w = args.flags.get('worker');
    if (typeof w === 'string') { console.log(JSON.stringify(await worker(JSON.parse(w) as WorkerCfg))); return 0; }
    const models = list(args.flags.get('model'), 'B,tiny'), modes = list(args.flags.get('decode'), MODES.join(','));
    const computes = list(args.flags.get('compute'), 'fp32,bf16'), batch = Number(args.flags.get('batch') ?? 1);
    const size = Number(args.flags.get('image-size') ?? 256), peerTokens = Number(args.flags.get('peer-tokens') ?? 8);
    const warmup = Number(args.flags.get('warmup') ?? 1);
    if (!Number.isInteger(warmup) || warmup < 0 || warmup > 100) throw new TesseraError('ERR_INVALID_ARGUMENT', '--warmup needs an integer in 0..100');
    for (const m of models) if (m !== 'B' && m !== 'tiny') throw new TesseraError('ERR_INVALID_ARGUMENT', `--model: unknown ${m} (B, tiny)`);
    for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--decode: unknown ${m} (${MODES.join(', ')})`);
    for (const c of computes) if (c !== 'fp32' && c !== 'bf16') throw new TesseraError('ERR_INVALID_ARGUMENT', `--compute: unknown ${c} (fp32, bf16)`);
    if (!Number.isInteger(batch) || batch < 1) throw new TesseraError('ERR_INVALID_ARGUMENT', '--batch needs a positive integer');
    if (!Number.isInteger(size) || size < 16 || size % 16 !== 0) throw new TesseraError('ERR_INVALID_ARGUMENT', '--image-size needs a multiple of 16');
    if (!Number.isInteger(peerTokens) || peerTokens < 1) throw new TesseraError('ERR_INVALID_ARGUMENT', '--peer-tokens needs a positive integer');
    const grid = size / 16, json = args.flags.has('json'), threads = getThreads();
    const peerSkip = args.flags.has('no-peer') ? '--no-peer' : peerStatus();
    const say = (s: string): void => { if (!json) console.log(s); };
    const main = join(here, 'main.js');
    const rows: { model: string; impl: string; decode: string; result?: RunResult; peer?: PeerResult; skipped?: string }[] = [];
    say(`tessera bench llamagen: ${threads} threads; ${size} px (${grid}x${grid} tokens), batch ${batch}, cfg ${SAMPLING.cfg}, top-k ${SAMPLING.topK}; ` +
      `timed image after ${warmup} untimed one(s)` +
      `${peerSkip ? `; PyTorch peer skipped (${peerSkip})` : ''}`);
    for (const name of models) {
      const dir = mkdtempSync(join(tmpdir(), `tessera-bench-llamagen-${name}-`));
      try {
        let files: { weights: string; draft: string; codebook: string; nar: string };
        if (name === 'B') {
          files = { weights: join(dir, 'gpt.safetensors'), draft: join(dir, 'draft.safetensors'), codebook: join(dir, 'codebook.safetensors'), nar: join(dir, 'gpt_nar.safetensors') };
          writeSafetensors(files.weights, randomGptTensors(GPT_B, 1));
          if (modes.includes('nar')) writeSafetensors(files.nar, randomGptTensors({ ...GPT_B, verticalHead: true }, 1));
          writeSafetensors(files.draft, randomGptTensors(DRAFT_B, 1000));
          const cb = randomUniform(GPT_B.vocabulary * 8, 77);
          writeSafetensors(files.codebook, [{ name: 'quantize.embedding.weight', dtype: 'float32', shape: [GPT_B.vocabulary, 8], data: cb }]);
        } else {
          files = { weights: join(FIXTURES, 'gpt.pt'), draft: join(FIXTURES, 'gpt_draft.pt'), codebook: join(FIXTURES, 'vq.pt'), nar: join(FIXTURES, 'gpt_nar.pt') };
          if (!existsSync(files.weights)) { say(`\ntiny: ${files.weights} not found (run from a source checkout); skipped`); continue; }
        }
        say(`\n${name}: ${files.weights} ${mb(statSync(files.weights).size)} (fp32 file)`);
        for (const c of computes)
          for (const decode of modes) {
            const cfg: WorkerCfg = { ...files, grid, batch, decode: decode as Mode, compute: c === 'bf16' ? 'bfloat16' : 'float32', seed: 0, warmup };
            const r = spawnSync(process.execPath, [main, 'bench', 'llamagen', '--worker', JSON.stringify(cfg)], { encoding: 'utf8', maxBuffer: 1 << 24 });
            if (r.status !== 0) throw new TesseraError('ERR_INTERNAL', `worker ${name} ${decode} ${c} failed: ${r.stderr}`);
            const row = { model: name, impl: `tessera-${c}`, decode, result: JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult };
            rows.push(row);
            report(row.impl, decode, row.result, grid, batch, rows.find((o) => o.model === name && o.impl === row.impl && o.decode === 'ar')?.result, say);
          }
        if (peerSkip) { rows.push({ model: name, impl: 'pytorch', decode: 'ar', skipped: peerSkip }); say(`  pytorch: skipped (${peerSkip})`); continue; }
        if (name === 'tiny' && !files.weights.endsWith('.safetensors')) {
          // The peer reads safetensors only: write the fixture's GPT in that format.
          const ck = openCheckpoint(files.weights);
          try {
            const t = [...ck.tensors].map(([n, s]) => ({ name: n, dtype: 'float32' as const, shape: s.shape, data: Float32Array.from(s.load().data as ArrayLike<number>) }));
            files.weights = join(dir, 'gpt.safetensors');
            writeSafetensors(files.weights, t);
          } finally { ck.close(); }
        }
        const p = spawnSync(PYTHON, [PEER_SCRIPT, '--weights', files.weights, '--grid', String(grid), '--tokens', String(peerTokens),
          '--cfg', String(SAMPLING.cfg), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
        if (p.status !== 0) { rows.push({ model: name, impl: 'pytorch', decode: 'ar', skipped: `failed: ${p.stderr.trim().split('\n').pop()}` }); say(`  pytorch: failed: ${p.stderr.trim().split('\n').pop()}`); continue; }
        const peer = JSON.parse(p.stdout.trim().split('\n').pop()!) as PeerResult;
        rows.push({ model: name, impl: 'pytorch', decode: 'ar', peer });
        const ar = rows.find((o) => o.model === name && o.impl === 'tessera-fp32' && o.decode === 'ar')?.result;
        const arMsTok = ar ? ar.wallMs / ar.stats.forwardPasses : undefined;
        say(`  pytorch ${peer.torch} fp32 ar: ${peer.msPerToken.toFixed(1)} ms/token (wall; CPU ${peer.cpuMsPerToken.toFixed(1)} ms) over ${peer.tokensTimed} tokens, ` +
          `EXTRAPOLATED ${peer.extrapolatedMsPerImage.toFixed(0)} ms/image; peak RSS ${mb(peer.peakRssBytes)}` +
          `${arMsTok ? `; tessera fp32 ar is ${(peer.msPerToken / arMsTok).toFixed(2)}x faster per token` : ''}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (json) console.log(JSON.stringify({ threads, size, batch, sampling: SAMPLING, rows }, null, 2));
    return 0;
  },
};

function report(impl: string, decode: string, r: RunResult, grid: number, batch: number, ar: RunResult | undefined, say: (s: string) => void): void {
  const s = r.stats, perImage = r.wallMs / batch, tokens = grid * grid * batch;
  const floorMs = r.weightBytes / (r.copyGBs * 1e9) * 1000, perPass = r.wallMs / s.forwardPasses;
  const readFloorMs = r.weightBytes / (r.readGBs * 1e9) * 1000;
  const gain = ar && decode !== 'ar' ? `  ${(ar.wallMs / r.wallMs).toFixed(2)}x ar wall, ${(ar.stats.forwardPasses / s.forwardPasses).toFixed(2)}x fewer passes` : '';
  say(`  ${impl.padEnd(13)} ${decode.padEnd(8)} ${perImage.toFixed(0).padStart(7)} ms/image (CPU ${(r.cpuMs / batch).toFixed(0)} ms)  ` +
    `${((tokens * 1000) / r.wallMs).toFixed(1).padStart(7)} tok/s  peak RSS ${mb(r.peakRssBytes)}${gain}`);
  say(`      forward_passes=${s.forwardPasses}${s.draftForwardPasses !== undefined ? ` draft_forward_passes=${s.draftForwardPasses}` : ''} ` +
    `tokens_per_pass=${s.tokensPerPass.toFixed(3)} spec_decode_num_drafts=${s.numDrafts} spec_decode_num_draft_tokens=${s.numDraftTokens} ` +
    `spec_decode_num_accepted_tokens=${s.numAcceptedTokens} acceptance_rate=${s.acceptanceRate.toFixed(4)} mean_acceptance_length=${s.meanAcceptanceLength.toFixed(3)}`);
  say(`      ${perPass.toFixed(2)} ms/forward; floor ${floorMs.toFixed(2)} ms = ${mb(r.weightBytes)} packed weights / ${r.copyGBs.toFixed(2)} GB/s copy; ` +
    `ratio ${(perPass / floorMs).toFixed(2)}x${r.draftWeightBytes ? ` (drafter ${mb(r.draftWeightBytes)})` : ''}; load ${r.loadMs.toFixed(0)} ms`);
  say(`      read floor ${readFloorMs.toFixed(2)} ms = the weights / ${r.readGBs.toFixed(2)} GB/s streaming read (same process): ratio ${(perPass / readFloorMs).toFixed(2)}x`);
}
