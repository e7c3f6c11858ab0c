// The bf16 weight path (packWeight compute bfloat16: weights and GEMM inputs
// rounded to bfloat16, float32 accumulation) against the fp32 path and the
// float64 reference, under teacher forcing. bfloat16 keeps 8 significant
// bits (relative rounding 2^-9 ≈ 2e-3 per operand); through two blocks and
// the head the logits move by 6.4e-3 of their largest magnitude (measured),
// so the bar is 2e-2: about 3x the rounding, while a wrong weight, bias or
// layout (errors of order 1) fails.
import { describe, expect, it } from 'vitest';

import { disposeConditioning, VarCache, VarTransformer } from '../lib/models/var/transformer.js';
import { begin, maxRelError, openFixture, ref, SCHEDULE, sliceTokens } from './var-fixtures.js';

async function teacherForced(model: VarTransformer): Promise<Float32Array[]> {
  const labels = Array.from(ref('tf_labels').data), inputs = ref('tf_inputs');
  const cond = await model.condition(labels);
  const cache = new VarCache(model.config, 2 * labels.length);
  const out: Float32Array[] = [];
  for (let si = 0; si < SCHEDULE.length; si++) {
    const n = SCHEDULE[si]! ** 2, at = begin(si);
    const x = si === 0 ? model.startTokens(cond) : await model.scaleInput(si, sliceTokens(inputs, at - 1, at - 1 + n));
    out.push(Float32Array.from((await model.forwardScale(x, cond, cache)).data as Float32Array));
  }
  cache.dispose();
  disposeConditioning(cond);
  return out;
}

describe('VAR bf16 weights', () => {
  it('per-scale logits within 2e-2 (relative to the largest) of fp32 and of the float64 reference', async () => {
    const file = openFixture('var.pth').tensors;
    const fp32 = await VarTransformer.load(file, 'var.pth');
    const bf16 = await VarTransformer.load(file, 'var.pth', { compute: 'bfloat16' });
    const a = await teacherForced(fp32), b = await teacherForced(bf16);
    const raw = ref('tf_logits');
    let worst = 0;
    for (let si = 0; si < SCHEDULE.length; si++) {
      const n = SCHEDULE[si]! ** 2, want = sliceTokens(raw, begin(si), begin(si) + n).data as Float32Array;
      expect(maxRelError(a[si]!, want), `fp32 scale ${si}`).toBeLessThan(1e-4);
      const e = Math.max(maxRelError(b[si]!, a[si]!), maxRelError(b[si]!, want));
      expect(e, `bf16 scale ${si}`).toBeLessThan(2e-2);
      worst = Math.max(worst, e);
    }
    expect(worst, 'bf16 must actually round (not silently run fp32)').toBeGreaterThan(1e-5);
    fp32.dispose();
    bf16.dispose();
  });
});
