#!/usr/bin/env node
// Speculative decoding and watermarking measured with Tessera on the embedded
// tiny LlamaGen (models/tiny-llamagen; issue 8 part 3, issue 6's figures).
//
//   npx tsc -p tsconfig.json
//   TESSERA_NUM_THREADS=1 node scripts/train/eval_decoding.mjs [--images 200] [--seed 0]
//       [--modes ar,sjd,lantern[,draft]] [--window 16] [--lantern-k K] [--lantern-delta 0.1]
//       [--cfg s] [--top-k k] [--top-p p] [--model-dir models/tiny-llamagen] [--json out.json]
//   TESSERA_NUM_THREADS=1 node scripts/train/eval_decoding.mjs --watermark [--images 200] [--seed 0]
//       [--key tessera-eval] [--delta 2] [--gamma 0.25] [--json out.json]
//
// Decoding: image i has class i % 10 and seed `seed + i`, generated at batch 1
// (a batch moves by its smallest accepted count, so batch 1 is the per-image
// figure the papers report) with each mode, the same images and seeds for
// every mode. Per mode: forward passes per image (prefill included), the
// pass reduction against ar (ar passes / mode passes: the papers' "step
// compression"), tokens per pass, vLLM's counters summed over the images
// (spec_decode_num_drafts, _num_draft_tokens, _num_accepted_tokens), the
// acceptance rate (accepted / draft tokens), the mean acceptance length
// (1 + accepted / drafts: tokens per verification pass), wall and CPU
// milliseconds per image of token generation (the VQ decode is timed
// apart: it costs the same in every mode), and the classifier accuracy of the
// decoded images (LANTERN trades quality for speed). --window applies to the
// Jacobi modes; draft uses its default window (5) unless --draft-window.
//
// --watermark: the same classes and seeds with plain sampling, once without
// and once with the keyed green-list bias (lib/watermark). Each image is
// written as PNG, optionally transformed with sharp (JPEG quality 75;
// resize to half size and back, sharp's default Lanczos-3 both ways), then
// `detectImage` re-tokenises it and runs the pooled z-test at its default
// false-positive bound (alpha 1e-3). Reported: the false-positive rate on
// the unmarked images and the detection rate on the marked ones, per
// transform (and, as 'tokens', the z-test on the generated token grids
// themselves, before any pixels), the mean z, how many re-tokenised tokens equal the generated
// ones (the VQ round trip the detector depends on), and the classifier
// accuracy with and without the bias.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

import sharp from 'sharp';

import { toRgb8 } from '../../dist/lib/io/image.js';
import {
  classify, decodeLlamaGenTokens, embeddedLlamaGen, generateLlamaGenImages, generateLlamaGenTokens, loadEmbeddedLlamaGen,
} from '../../dist/lib/models/embedded.js';
import { detectImage } from '../../dist/lib/watermark/detect.js';
import { resolveWatermark, watermarkBias } from '../../dist/lib/watermark/greenlist.js';
import { detectTokens } from '../../dist/lib/watermark/ztest.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const num = (name) => (flag(name, undefined) === undefined ? undefined : Number(flag(name, undefined)));
const images = Number(flag('images', 200));
const seed = Number(flag('seed', 0));
const model = embeddedLlamaGen(resolve(flag('model-dir', 'models/tiny-llamagen')));
const sampling = { cfg: num('cfg'), topK: num('top-k'), topP: num('top-p') };
const pipe = await loadEmbeddedLlamaGen(model);
const jsonOut = flag('json', undefined);
const classOf = (i) => i % model.classes.length;
const s = model.sampling;
const settings = {
  model: model.dir, images, seed, cfg: sampling.cfg ?? s.cfg, top_k: sampling.topK ?? s.topK, top_p: sampling.topP ?? s.topP,
  temperature: s.temperature, threads: process.env.TESSERA_NUM_THREADS ?? 'default',
};

const pct = (x) => `${(100 * x).toFixed(1)}%`;

async function decoding() {
  const modes = flag('modes', 'ar,sjd,lantern').split(',');
  const window = num('window'), lanternK = num('lantern-k'), lanternDelta = num('lantern-delta'), draftWindow = num('draft-window');
  const rows = [];
  for (const mode of modes) {
    const t = {
      mode, passes: 0, tokens: 0, drafts: 0, draftTokens: 0, accepted: 0, right: 0, wallMs: 0, cpuMs: 0, decodeMs: 0,
      perPos: [], draftPasses: 0,
    };
    for (let i = 0; i < images; i++) {
      const c = classOf(i);
      const cpu0 = process.cpuUsage(), w0 = performance.now();
      const r = await generateLlamaGenTokens(model, pipe, {
        classes: [c], seed: seed + i, decode: mode, ...sampling,
        window: mode === 'draft' ? draftWindow : mode === 'ar' ? undefined : window, lanternK, lanternDelta,
      });
      const wall = performance.now() - w0, cpu = process.cpuUsage(cpu0);
      const d0 = performance.now();
      const img = await decodeLlamaGenTokens(model, pipe, r.tokens);
      t.decodeMs += performance.now() - d0;
      t.wallMs += wall;
      t.cpuMs += (cpu.user + cpu.system) / 1000;
      const st = r.stats;
      t.passes += st.forwardPasses; t.tokens += st.tokens; t.drafts += st.numDrafts; t.draftTokens += st.numDraftTokens; t.accepted += st.numAcceptedTokens;
      t.draftPasses += st.draftForwardPasses ?? 0;
      (st.numAcceptedTokensPerPos ?? []).forEach((n, j) => { t.perPos[j] = (t.perPos[j] ?? 0) + n; });
      const [p] = await classify(model.classifier, img);
      if (p === c) t.right++;
      img.dispose();
    }
    rows.push(t);
    process.stderr.write(`${mode}: done\n`);
  }
  const ar = rows.find((r) => r.mode === 'ar');
  const out = rows.map((t) => ({
    mode: t.mode,
    forward_passes_per_image: t.passes / images,
    pass_reduction_vs_ar: ar ? ar.passes / t.passes : undefined,
    tokens_per_pass: t.tokens / t.passes,
    spec_decode_num_drafts: t.drafts,
    spec_decode_num_draft_tokens: t.draftTokens,
    spec_decode_num_accepted_tokens: t.accepted,
    draft_acceptance_rate: t.draftTokens ? t.accepted / t.draftTokens : 0,
    mean_acceptance_length: t.drafts ? 1 + t.accepted / t.drafts : 1,
    ...(t.perPos.length ? { spec_decode_num_accepted_tokens_per_pos: t.perPos } : {}),
    ...(t.draftPasses ? { draft_forward_passes_per_image: t.draftPasses / images } : {}),
    wall_ms_per_image: t.wallMs / images,
    cpu_ms_per_image: t.cpuMs / images,
    wall_speedup_vs_ar: ar ? ar.wallMs / t.wallMs : undefined,
    vq_decode_ms_per_image: t.decodeMs / images,
    classifier_accuracy: t.right / images,
  }));
  console.log(`tiny LlamaGen (${model.dir}): ${images} images (class i % 10, seed ${seed} + i), batch 1, cfg ${settings.cfg}, ` +
    `top-k ${settings.top_k}, top-p ${settings.top_p}, window ${window ?? 'default 16'}${modes.includes('lantern') ? `, LANTERN k ${lanternK ?? 'all'} delta ${lanternDelta ?? 0.1}` : ''}, ` +
    `TESSERA_NUM_THREADS ${settings.threads}`);
  console.log('| mode | passes/image | pass reduction | tokens/pass | num_drafts | num_draft_tokens | num_accepted_tokens | acceptance rate | mean acceptance length | ms/image (wall) | ms/image (CPU) | wall speed-up | classifier accuracy |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const o of out)
    console.log(`| ${o.mode} | ${o.forward_passes_per_image.toFixed(2)} | ${o.pass_reduction_vs_ar?.toFixed(2) ?? '-'}x | ${o.tokens_per_pass.toFixed(2)} | ` +
      `${o.spec_decode_num_drafts} | ${o.spec_decode_num_draft_tokens} | ${o.spec_decode_num_accepted_tokens} | ${pct(o.draft_acceptance_rate)} | ` +
      `${o.mean_acceptance_length.toFixed(2)} | ${o.wall_ms_per_image.toFixed(1)} | ${o.cpu_ms_per_image.toFixed(1)} | ${o.wall_speedup_vs_ar?.toFixed(2) ?? '-'}x | ${pct(o.classifier_accuracy)} |`);
  return { settings: { ...settings, window, lantern_k: lanternK, lantern_delta: lanternDelta }, modes: out };
}

const TRANSFORMS = {
  none: (png) => png,
  jpeg75: (png) => sharp(png).jpeg({ quality: 75 }).toBuffer(),
  resize05: async (png, size) => {
    const half = await sharp(png).resize(size / 2, size / 2).png().toBuffer();
    return sharp(half).resize(size, size).png().toBuffer();
  },
};

async function watermarkEval() {
  const w = resolveWatermark({ key: flag('key', 'tessera-eval'), delta: num('delta'), gamma: num('gamma') });
  const V = pipe.gpt.config.vocabulary, batch = 20, size = model.imageSize;
  const result = {};
  for (const marked of [false, true]) {
    const tally = Object.fromEntries(['tokens', ...Object.keys(TRANSFORMS)].map((k) => [k, { flagged: 0, zSum: 0 }]));
    let right = 0, sameTokens = 0;
    for (let i0 = 0; i0 < images; i0 += batch) {
      const n = Math.min(batch, images - i0);
      const classes = Array.from({ length: n }, (_, b) => classOf(i0 + b));
      const r = await generateLlamaGenImages(model, pipe, {
        classes, seed: seed + i0, ...sampling, logitBias: marked ? watermarkBias(w, V, seed + i0, n) : undefined,
      });
      const pred = await classify(model.classifier, r.images);
      for (let b = 0; b < n; b++) {
        if (pred[b] === classes[b]) right++;
        // The z-test on the generated tokens themselves (no pixels): what the bias put in, before the VQ round trip.
        const t = detectTokens(r.tokens[b], V, w);
        tally.tokens.flagged += t.watermarked ? 1 : 0;
        tally.tokens.zSum += t.z;
        const png = await sharp(toRgb8(r.images, b), { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
        for (const [name, f] of Object.entries(TRANSFORMS)) {
          const d = await detectImage(pipe.vq, await f(png, size), { watermark: w });
          tally[name].flagged += d.watermarked ? 1 : 0;
          tally[name].zSum += d.z;
          if (name === 'none') sameTokens += d.ids.reduce((a, id, j) => a + (id === r.tokens[b][j] ? 1 : 0), 0);
        }
      }
      r.images.dispose();
    }
    result[marked ? 'watermarked' : 'unwatermarked'] = {
      images, classifier_accuracy: right / images, retokenised_equal: sameTokens / (images * model.grid * model.grid),
      ...Object.fromEntries(Object.entries(tally).map(([k, v]) => [k, { flagged: v.flagged, rate: v.flagged / images, mean_z: v.zSum / images }])),
    };
  }
  const u = result.unwatermarked, m = result.watermarked;
  console.log(`tiny LlamaGen watermark: key "${w.key}", gamma ${w.gamma}, delta ${w.delta}, pool ${w.pool}, alpha 1e-3; ${images} images per row ` +
    `(class i % 10, seed ${seed} + i), cfg ${settings.cfg}, top-k ${settings.top_k}, top-p ${settings.top_p}`);
  console.log('| images | transform | flagged | rate | mean z |');
  console.log('|---|---|---|---|---|');
  for (const [label, r] of [['unwatermarked (false positives)', u], ['watermarked (detections)', m]])
    for (const k of ['tokens', ...Object.keys(TRANSFORMS)]) console.log(`| ${label} | ${k} | ${r[k].flagged}/${images} | ${pct(r[k].rate)} | ${r[k].mean_z.toFixed(2)} |`);
  console.log(`re-tokenised tokens equal to the generated ones (no transform): unwatermarked ${pct(u.retokenised_equal)}, watermarked ${pct(m.retokenised_equal)}`);
  console.log(`classifier accuracy: unwatermarked ${pct(u.classifier_accuracy)}, watermarked ${pct(m.classifier_accuracy)}`);
  return { settings: { ...settings, key: w.key, gamma: w.gamma, delta: w.delta, pool: w.pool }, ...result };
}

const t0 = Date.now();
const report = args.includes('--watermark') ? await watermarkEval() : await decoding();
pipe.close();
console.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 1)}\n`);
