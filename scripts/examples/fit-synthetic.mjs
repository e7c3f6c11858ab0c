#!/usr/bin/env node
// Fits a 3DGS scene to renders of a known synthetic scene and prints the
// held-out PSNR as it trains (the long form of test/splat-fit.test.ts).
//   npm run build && node scripts/examples/fit-synthetic.mjs [--steps 7000] [--size 128]
//     [--gaussians 500] [--views 64] [--sh-degree 1] [--seed 0] [--eval-every 500]
// Every 8th view is held out. The schedule is the 3DGS one scaled to --steps:
// densify every 100 steps from 500 to steps/2, opacity reset every 3000.
import { splat } from '../../dist/lib/index.js';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const num = (k, d) => (args[k] !== undefined ? Number(args[k]) : d);
const steps = num('steps', 7000), size = num('size', 128), count = num('gaussians', 500), nViews = num('views', 64);
const shDegree = num('sh-degree', 1), seed = num('seed', 0), evalEvery = num('eval-every', 500);

const gt = splat.syntheticScene({ count, seed: seed + 1, shDegree });
const views = await splat.renderViews(gt, splat.orbitCameras(nViews, 3.5, size));
const train = views.filter((_, i) => i % 8 !== 0), test = views.filter((_, i) => i % 8 === 0);
console.log(`synthetic scene: ${count} Gaussians, SH degree ${shDegree}; ${train.length} training and ${test.length} held-out views at ${size}x${size}`);
const t0 = performance.now();
const { scene } = await splat.fitScene(train, {
  steps, seed, shDegree, initialGaussians: count, evalViews: test, evalEvery,
  onProgress: (p) => console.log(`step ${String(p.step).padStart(6)}  L1 ${p.loss.toFixed(4)}  Gaussians ${String(p.gaussians).padStart(6)}  ` +
    `held-out PSNR ${p.psnr?.toFixed(2) ?? '-'} dB  ${((performance.now() - t0) / 1000).toFixed(1)} s`),
});
console.log(`done: ${scene.count} Gaussians`);
