// NAR teacher forcing, shared by the NAR tests: both heads (right, down) of
// every KV slot of a fresh state, fed as the official generate() feeds them:
// the class slot, then anti-diagonal d = r + c of the G×G grid in row order
// (slot = 1 + raster index). Row r reads image r % images of ids [images, G·G].
import type { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import type { Tensor } from '../lib/tensor.js';

export interface NarHeads {
  right: Float32Array;  // [rows, 1 + G·G, V]
  down: Float32Array;
  length: number;  // the state's length after the last pass
}

export async function narTeacherForced(model: LlamaGenGpt, labels: readonly number[], ids: ArrayLike<number>,
  images: number, G: number): Promise<NarHeads> {
  const N = G * G, V = model.config.vocabulary, rows = labels.length;
  const right = new Float32Array(rows * (1 + N) * V), down = new Float32Array(rows * (1 + N) * V);
  const state = model.newState(rows, G);
  try {
    const put = async (slots: number[], x: Promise<Tensor>): Promise<void> => {
      const out = await model.forwardNar(state, await x, Int32Array.from(slots));
      const a = out.right.data as Float32Array, z = out.down.data as Float32Array, n = slots.length;
      for (let r = 0; r < rows; r++)
        slots.forEach((slot, j) => {
          right.set(a.subarray((r * n + j) * V, (r * n + j + 1) * V), (r * (1 + N) + slot) * V);
          down.set(z.subarray((r * n + j) * V, (r * n + j + 1) * V), (r * (1 + N) + slot) * V);
        });
      out.right.dispose(); out.down.dispose();
    };
    await put([0], model.classEmbeddings(labels));
    for (let d = 0; d <= 2 * G - 2; d++) {
      const slots: number[] = [];
      for (let r = 0; r < G; r++) if (d - r >= 0 && d - r < G) slots.push(1 + r * G + d - r);
      const feed = new Int32Array(rows * slots.length);
      for (let r = 0; r < rows; r++) slots.forEach((s, j) => { feed[r * slots.length + j] = ids[(r % images) * N + s - 1]!; });
      await put(slots, model.tokenEmbeddings(feed));
    }
    return { right, down, length: state.length };
  } finally {
    state.dispose();
  }
}
