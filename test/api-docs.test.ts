// docs/api.md's code blocks must compile against the package's public entry:
// each ```ts block is written out with `from 'tessera'` pointing at
// lib/index.ts and type-checked (strict, the project's compiler options).
// They are not run: they name checkpoint files the tests do not have.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
// Inside the repository, so that `typescript` and `@types/node` resolve as for lib/.
const dir = mkdtempSync(join(root, 'test', '.api-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('docs/api.md', () => {
  it('has code blocks for every model family', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    for (const name of ['loadVar', 'loadLlamaGen', 'splat.render', 'octree.Octree.build', 'gauss2d.fitImage'])
      expect(doc).toContain(name);
  });

  it('every block type-checks against lib/index.ts', () => {
    const files = blocks.map((code, i) => {
      const f = `block${i}.mts`;
      writeFileSync(join(dir, f), `${code.replaceAll("from 'tessera'", "from '../../lib/index.js'")}\nexport {};\n`);
      return f;
    });
    // The project's compiler options (tsconfig.json), strict, no output.
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: '../../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '../..' }, include: [], files,
    }));
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);
});
