// OctFormer RPE bias before/after the native kernel: the former plain-JS loop
// (windowAttention's rpeBias up to the native octree_rpe_bias, kept here
// verbatim) against the native op over every window chunk of N tokens, with
// the event loop's longest stall and its total time in stalls over 5 ms (a
// 1 ms interval timer) during each, and the
// whole windowAttention with RPE (native) against the same without RPE.
//   npx tsc -p tsconfig.json [--outDir DIR]; node scripts/bench/rpe_bias_before_after.mjs [--dist DIR] [--tokens N] [--windows 32,1024] [--heads H] [--channels C] [--runs R]
// TESSERA_ADDON_PATH picks the addon as usual. Seeded random inputs; one sample.
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };
const dist = resolve(arg('dist', 'dist'));
const { windowAttention, windowPlan, rpeBias, gatherRows } = await import(pathToFileURL(`${dist}/lib/models/octree/attention.js`).href);
const { attention } = await import(pathToFileURL(`${dist}/lib/ops/attention.js`).href);
const { Tensor } = await import(pathToFileURL(`${dist}/lib/tensor.js`).href);
const { getThreads } = await import(pathToFileURL(`${dist}/lib/runtime.js`).href);

const N = Number(arg('tokens', '100000')), H = Number(arg('heads', '8')), C = Number(arg('channels', '96')), runs = Number(arg('runs', '3'));
const windows = arg('windows', '32,1024').split(',').map(Number);

function rpeBiasJs(rpe, heads, perm, K, w0, n) {
  const { table, bound: B, xyz } = rpe, R = 2 * B + 1, H = heads;
  const out = new Float32Array(n * H * K * K);
  const clampIdx = (d) => (d < -B ? 0 : d > B ? 2 * B : d + B);
  for (let w = 0; w < n; w++) {
    const base = (w0 + w) * K;
    for (let i = 0; i < K; i++) {
      const ti = perm[base + i];
      if (ti < 0) continue;
      for (let j = 0; j < K; j++) {
        const tj = perm[base + j];
        if (tj < 0) continue;
        const rx = clampIdx(xyz[3 * ti] - xyz[3 * tj]) * H;
        const ry = (R + clampIdx(xyz[3 * ti + 1] - xyz[3 * tj + 1])) * H;
        const rz = (2 * R + clampIdx(xyz[3 * ti + 2] - xyz[3 * tj + 2])) * H;
        for (let h = 0; h < H; h++)
          out[((w * H + h) * K + i) * K + j] = Math.fround(Math.fround(table[rx + h] + table[ry + h]) + table[rz + h]);
      }
    }
  }
  return out;
}

/** windowAttention with RPE as it was before the native kernel (JS bias per chunk). */
async function windowAttentionBefore(q, k, v, heads, plan, rpe) {
  const [N, C] = q.shape, d = C / heads, W = plan.numWindows, K = plan.window;
  const perm = plan.perm.data, seg = plan.segments.data;
  const chunk = Math.max(1, Math.floor((1 << 23) / (heads * K * K)));
  const out = new Float32Array(N * C);
  for (let w0 = 0; w0 < W; w0 += chunk) {
    const n = Math.min(chunk, W - w0);
    const index = Tensor.from(perm.slice(w0 * K, (w0 + n) * K), [n * K]);
    const segments = Tensor.from(seg.slice(w0 * K, (w0 + n) * K), [n, K]);
    const shape = [n, K, heads, d];
    const [qw, kw, vw] = await Promise.all([q, k, v].map((t) => gatherRows(t, index)));
    const ow = await attention({
      q: qw.reshape(shape), k: kw.reshape(shape), v: vw.reshape(shape), layout: 'blhd',
      mask: [{ segments: { q: segments, k: segments } }, { additive: Tensor.from(rpeBiasJs(rpe, heads, perm, K, w0, n), [n, heads, K, K]) }],
    });
    const o = ow.data, idx = index.data;
    for (let s = 0; s < n * K; s++) if (idx[s] >= 0) out.set(o.subarray(s * C, (s + 1) * C), idx[s] * C);
  }
  return out;
}

let s = 12345;
const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };

/** Runs fn while a 1 ms timer measures the longest gap between its ticks. */
async function withStall(fn) {
  let last = performance.now(), worst = 0, blocked = 0;
  const tick = () => { const t = performance.now(), gap = t - last; worst = Math.max(worst, gap); if (gap > 5) blocked += gap; last = t; };
  const timer = setInterval(tick, 1);
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  tick();
  clearInterval(timer);
  return { ms, stall: worst, blocked };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`RPE bias before/after: ${N} tokens, ${H} heads, ${getThreads()} threads, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const K of windows) {
  const bound = Math.floor(0.8 * K);  // int(0.8·K·√dilation), dilation 1
  const table = Float32Array.from({ length: 3 * (2 * bound + 1) * H }, () => u() * 0.04 - 0.02);
  // Tokens of a 64³ grid in raster order: neighbours in a window are near in space.
  const xyz = new Int32Array(3 * N);
  for (let i = 0; i < N; i++) { xyz[3 * i] = i % 64; xyz[3 * i + 1] = Math.floor(i / 64) % 64; xyz[3 * i + 2] = Math.floor(i / 4096); }
  const rpe = { table, bound, xyz };
  const plan = await windowPlan(new Int32Array(N), 1, { window: K });
  const W = plan.numWindows, perm = plan.perm.data;
  const chunk = Math.max(1, Math.floor((1 << 23) / (H * K * K)));
  const values = W * H * K * K;
  // Before: the JS loop over every chunk (as windowAttention did), once.
  const before = await withStall(async () => { for (let w0 = 0; w0 < W; w0 += chunk) rpeBiasJs(rpe, H, perm, K, w0, Math.min(chunk, W - w0)); });
  // After: the native op over the same chunks.
  // After: the native op over the same chunks, into one reused buffer as windowAttention does.
  const afterRuns = [];
  for (let r = 0; r < runs; r++)
    afterRuns.push(await withStall(async () => {
      const buf = Tensor.empty([Math.min(chunk, W), H, K, K]);
      for (let w0 = 0; w0 < W; w0 += chunk) {
        const n = Math.min(chunk, W - w0);
        await rpeBias(rpe, H, plan.perm, K, w0, n, n === buf.shape[0] ? buf : Tensor.from(buf.data.subarray(0, n * H * K * K), [n, H, K, K]));
      }
      buf.dispose();
    }));
  const after = { ms: median(afterRuns.map((x) => x.ms)), stall: Math.max(...afterRuns.map((x) => x.stall)), blocked: Math.max(...afterRuns.map((x) => x.blocked)) };
  console.log(`K ${K} (bound ${bound}, ${W} windows, ${(values / 1e6).toFixed(1)} M bias values, chunks of ${chunk} windows):`);
  console.log(`  bias, JS loop (before):  ${before.ms.toFixed(0)} ms, event loop stalled ${before.blocked.toFixed(0)} ms (longest ${before.stall.toFixed(0)} ms)`);
  console.log(`  bias, native (after):    ${after.ms.toFixed(0)} ms (median of ${runs}), event loop stalled ${after.blocked.toFixed(0)} ms (longest ${after.stall.toFixed(1)} ms) → ${(before.ms / after.ms).toFixed(1)}× faster`);
  const rnd = () => Tensor.from(Float32Array.from({ length: N * C }, () => u() * 2 - 1), [N, C]);
  const [q, k, v] = [rnd(), rnd(), rnd()];
  const timeIt = async (withRpe) => {
    const ts = [];
    for (let r = 0; r < runs; r++) ts.push((await withStall(() => windowAttention(q, k, v, H, plan, undefined, withRpe ? rpe : undefined))));
    return { ms: median(ts.map((x) => x.ms)), stall: Math.max(...ts.map((x) => x.stall)), blocked: Math.max(...ts.map((x) => x.blocked)) };
  };
  const plain = await timeIt(false), full = await timeIt(true);
  let ref;
  const former = await withStall(async () => { ref = await windowAttentionBefore(q, k, v, H, plan, rpe); });
  const got = (await windowAttention(q, k, v, H, plan, undefined, rpe)).data;
  let diff = 0;
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], ref[i])) diff++;
  console.log(`  windowAttention C ${C}: no RPE ${plain.ms.toFixed(0)} ms; with RPE: before ${former.ms.toFixed(0)} ms (stalled ${former.blocked.toFixed(0)} ms, longest ${former.stall.toFixed(0)} ms), ` +
    `after ${full.ms.toFixed(0)} ms (stalled ${full.blocked.toFixed(0)} ms, longest ${full.stall.toFixed(1)} ms) → ${(former.ms / full.ms).toFixed(2)}×; outputs ${diff === 0 ? 'bit-identical' : `DIFFER in ${diff} values`}`);
}
