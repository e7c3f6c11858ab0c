import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native kernels use the engine's own thread pool; running test files in
    // parallel workers would only oversubscribe the cores.
    fileParallelism: false,
    testTimeout: 30_000,
  },
});
