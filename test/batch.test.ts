// Batch mode (issue 9 part 7) against a real Redis server: TESSERA_REDIS_URL,
// which .ci/run starts on loopback (redis-server --port 6390). Without it
// these tests fail, unless TESSERA_REDIS=0 says to skip them on purpose.
// Workers are CLI child processes (node dist/lib/cli/main.js batch work), as
// they run in production; every image they write must be the same bytes as
// `tessera generate` writes for that class and seed alone.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { batchStatus } from '../lib/batch/status.js';
import { embeddedModel } from '../lib/models/embedded.js';
import { writeImage } from '../lib/io/image.js';
import { generate, type Generated } from '../lib/models/var/generate.js';
import { loadVar, type VarPipeline } from '../lib/models/var/load.js';
import { batchCommand } from '../lib/cli/batch.js';

const URL_ = process.env.TESSERA_REDIS_URL;
const SKIP = process.env.TESSERA_REDIS === '0';
const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'lib', 'cli', 'main.js');
// One key prefix per run, so runs (and other users of the server) never meet; removed afterwards.
const prefix = `tessera-test-${process.pid}-${Date.now().toString(36)}`;

describe('batch mode needs Redis', () => {
  it('TESSERA_REDIS_URL is set (or TESSERA_REDIS=0 skips the Redis tests on purpose)', () => {
    if (!SKIP && !URL_)
      throw new Error('TESSERA_REDIS_URL is not set: start redis-server on loopback and export TESSERA_REDIS_URL=redis://127.0.0.1:6390 ' +
        '(.ci/run does), or set TESSERA_REDIS=0 to skip the batch tests explicitly');
  });
});

interface Proc { child: ChildProcess; lines: string[]; err: string[]; exit: Promise<number | null>; waitFor(re: RegExp, ms?: number): Promise<string> }

function tessera(args: string[]): Proc {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [], err: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) (w.re.test(line) ? w.resolve(line) : waiters.push(w));
    }
  });
  child.stderr!.on('data', (d: Buffer) => err.push(d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child, lines, err, exit,
    waitFor: (re, ms = 60_000) => new Promise((resolve, reject) => {
      const seen = lines.find((l) => re.test(l));
      if (seen) return resolve(seen);
      const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; stdout:\n${lines.join('\n')}\nstderr:\n${err.join('')}`)), ms);
      waiters.push({ re, resolve: (l) => { clearTimeout(t); resolve(l); } });
      void exit.then(() => setTimeout(() => reject(new Error(`exited before a line matching ${re}; stdout:\n${lines.join('\n')}\nstderr:\n${err.join('')}`)), 50));
    }),
  };
}

async function ok(p: Proc): Promise<string[]> {
  const code = await p.exit;
  if (code !== 0) throw new Error(`exit ${code}\nstdout:\n${p.lines.join('\n')}\nstderr:\n${p.err.join('')}`);
  return p.lines;
}

describe.skipIf(SKIP || !URL_)('tessera batch on Redis', () => {
  const url = URL_!;
  const model = embeddedModel();
  const { cfg, topK, topP } = model.sampling;
  let pipe: VarPipeline;
  let dir: string;
  const refs = new Map<number, { png: Buffer; tokens: number[] }>();

  /** What `tessera generate --class c --seed s --batch 1` writes, and its tokens (scales in order). */
  async function reference(cls: number, seed: number): Promise<{ png: Buffer; tokens: number[] }> {
    const key = seed * 100 + cls;
    if (!refs.has(key)) {
      const g: Generated = await generate(pipe.vae, pipe.model, { classes: [cls], seed, cfg, topK, topP });
      const path = join(dir, `ref-${key}.png`);
      await writeImage(path, g.images, 0);
      g.images.dispose();
      refs.set(key, { png: readFileSync(path), tokens: g.tokens[0]!.flat() });
    }
    return refs.get(key)!;
  }

  /** Every image of a job (classes all: class i mod 10, seed seedBase + i) is on disk, once, with the reference bytes. */
  async function expectJobOutput(out: string, count: number, seedBase: number): Promise<void> {
    const pngs = readdirSync(out).filter((f) => f.endsWith('.png')).sort();
    expect(pngs).toEqual(Array.from({ length: count }, (_, i) => `${String(i).padStart(6, '0')}.png`));
    for (let i = 0; i < count; i++) expect(readFileSync(join(out, pngs[i]!)).equals((await reference(i % 10, seedBase + i)).png), `image ${i}`).toBe(true);
    expect(readdirSync(join(out, '.partial'))).toEqual([]);  // no temporary file left
  }

  const queueOf = (job: string): Queue => new Queue(job, { connection: { url, maxRetriesPerRequest: null }, prefix });
  const submit = (job: string, ...more: string[]): Promise<string[]> =>
    ok(tessera(['batch', 'submit', '--redis', url, '--prefix', prefix, '--job', job, ...more]));
  const worker = (job: string, out: string, ...more: string[]): Proc =>
    tessera(['batch', 'work', '--redis', url, '--prefix', prefix, '--job', job, '--out', out, ...more]);
  /** The chunk starts a worker reports (generated or found on disk). */
  const chunksOf = (p: Proc): number[] => p.lines.flatMap((l) => { const m = /^chunk (\d+)-\d+: (\d+ images in|already on disk)/.exec(l); return m ? [Number(m[1])] : []; });

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
    pipe = await loadVar(model.tokenizer, model.weights);
    dir = mkdtempSync(join(tmpdir(), 'tessera-batch-'));
  });

  afterAll(async () => {
    pipe?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    const r = new Redis(url);
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length) await r.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    r.disconnect();
  });

  it('two worker processes split a 40-image job: each image once, byte-identical to its solo generation, tokens too', async () => {
    const job = 'two-workers', out = join(dir, job);
    await submit(job, '--count', '40', '--chunk', '2', '--seed-base', '1000', '--tokens');
    // Hold the queue until both workers are up, so that both take chunks.
    const q = queueOf(job);
    await q.pause();
    const a = worker(job, out, '--concurrency', '2'), b = worker(job, out);
    await Promise.all([a.waitFor(/^worker .*: job two-workers/), b.waitFor(/^worker .*: job two-workers/)]);
    await q.resume();
    await Promise.all([ok(a), ok(b)]);
    await q.close();
    const ca = chunksOf(a), cb = chunksOf(b);
    console.log(`worker a took ${ca.length} chunks, worker b ${cb.length}`);
    expect(ca.length).toBeGreaterThan(0);
    expect(cb.length).toBeGreaterThan(0);
    expect([...ca, ...cb].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, k) => 2 * k));
    await expectJobOutput(out, 40, 1000);
    // Tokens: int32 [2, 130] per chunk (schedule 1,2,3,4,6,8: 130 tokens per image), the generation's own ids.
    const npys = readdirSync(join(out, 'tokens')).sort();
    expect(npys.length).toBe(20);
    expect(npys[3]).toBe('000006-000008.npy');
    const npy = readFileSync(join(out, 'tokens', npys[3]!));
    const headerLen = npy.readUInt16LE(8);
    expect(npy.subarray(10, 10 + headerLen).toString('latin1')).toMatch(/'descr': '<i4', 'fortran_order': False, 'shape': \(2, 130\)/);
    const ids = Array.from(new Int32Array(npy.buffer.slice(npy.byteOffset + 10 + headerLen, npy.byteOffset + npy.length)));
    expect(ids).toEqual([...(await reference(6, 1006)).tokens, ...(await reference(7, 1007)).tokens]);
    const st = await batchStatus({ url, job, prefix });
    expect(st.chunks).toMatchObject({ total: 20, completed: 20, failed: 0, active: 0, waiting: 0 });
    expect(st.images).toEqual({ total: 40, done: 40 });
    expect(st.rate.overall).toBeGreaterThan(0);
  }, 180_000);

  it('a worker killed mid-job (SIGKILL) and a restarted one still give exactly the 40 images, no duplicates, same bytes', async () => {
    const job = 'killed', out = join(dir, job);
    await submit(job, '--count', '40', '--chunk', '2', '--seed-base', '5000');
    const first = worker(job, out, '--lock-ms', '1500');
    // Killed just after its second chunk's files are written: that chunk is on disk but not yet reported done.
    await first.waitFor(/^chunk 2-4: \d+ images in/);
    first.child.kill('SIGKILL');
    await first.exit;
    const before = await batchStatus({ url, job, prefix });
    // The kill must land before the end, or this test proves nothing.
    expect(before.chunks.completed).toBeLessThan(20);
    console.log(`killed after ${before.chunks.completed} chunks; ${before.chunks.active} chunk(s) left locked by the dead worker`);
    // A temporary file of a dead process on this host is removed by the next worker.
    const stale = join(out, '.partial', `000003.png.${hostname().replace(/[^A-Za-z0-9-]/g, '_')}.${first.child.pid}.0`);
    writeFileSync(stale, 'partial');
    const second = worker(job, out, '--lock-ms', '1500');
    await ok(second);
    console.log(second.lines.filter((l) => l.includes('already on disk')).join('\n') || 'no chunk was found complete on disk');
    await expectJobOutput(out, 40, 5000);
    const after = await batchStatus({ url, job, prefix });
    expect(after.chunks).toMatchObject({ completed: 20, failed: 0, active: 0 });
  }, 180_000);

  it('SIGTERM finishes the chunk in hand and exits 0; a second signal releases it; the job then completes', async () => {
    const job = 'stopped', out = join(dir, job);
    await submit(job, '--count', '60', '--chunk', '10', '--seed-base', '9000');
    const q = queueOf(job);
    const a = worker(job, out);
    await a.waitFor(/^chunk \d+-\d+: \d+ images in/);
    a.child.kill('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(a.lines.some((l) => l.startsWith('SIGTERM: finishing'))).toBe(true);
    expect(await q.getJobCountByTypes('active')).toBe(0);
    // Only whole chunks are on disk.
    const done = await q.getJobCountByTypes('completed');
    expect(readdirSync(out).filter((f) => f.endsWith('.png')).length).toBe(10 * done);
    const b = worker(job, out);
    await b.waitFor(/^chunk \d+-\d+: \d+ images in/);
    b.child.kill('SIGTERM');
    await b.waitFor(/^SIGTERM: finishing/);  // two signals sent at once may arrive as one
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
    expect(b.lines.some((l) => l.startsWith('SIGTERM: releasing'))).toBe(true);
    expect(await q.getJobCountByTypes('active')).toBe(0);
    console.log(b.lines.filter((l) => l.includes('released')).join('\n') || 'no chunk was in hand at the second signal');
    await ok(worker(job, out));
    await q.close();
    await expectJobOutput(out, 60, 9000);
  }, 180_000);

  it('a chunk that fails is retried with backoff, ends failed after its attempts, and a resubmit retries it', async () => {
    const job = 'retried', out = join(dir, job);
    await submit(job, '--count', '8', '--chunk', '4', '--seed-base', '300', '--attempts', '2', '--backoff-ms', '200');
    // A directory where image 5 goes: every write of chunk 4-8 fails.
    mkdirSync(join(out, '000005.png'), { recursive: true });
    const a = worker(job, out);
    expect(await a.exit).toBe(1);
    expect(a.lines.filter((l) => /^chunk 4-8: attempt [12] of 2 failed: cannot write .*000005\.png/.test(l)).length).toBe(2);
    expect(a.err.join('')).toMatch(/1 chunks of job retried failed every attempt/);
    const st = await batchStatus({ url, job, prefix });
    expect(st.chunks).toMatchObject({ completed: 1, failed: 1, active: 0, waiting: 0, delayed: 0 });
    expect(st.failures).toEqual([{ start: 4, attempts: 2, reason: expect.stringMatching(/cannot write/) }]);
    rmSync(join(out, '000005.png'), { recursive: true });
    expect((await submit(job, '--count', '8', '--chunk', '4', '--seed-base', '300', '--attempts', '2', '--backoff-ms', '200')).join('\n'))
      .toMatch(/1 failed chunks retried/);
    await ok(worker(job, out));
    await expectJobOutput(out, 8, 300);
  }, 120_000);

  it('a worker refuses model files other than the job\'s, and an --out of another job', async () => {
    const job = 'guarded';
    await submit(job, '--count', '4', '--chunk', '4');
    // Same content, another path: accepted (another machine's copy); another file: refused by hash.
    const copy = join(dir, 'var-copy.pth');
    copyFileSync(model.weights, copy);
    const foreign = tessera(['batch', 'work', '--redis', url, '--prefix', prefix, '--job', job, '--out', join(dir, job), '--weights', model.tokenizer]);
    expect(await foreign.exit).toBe(1);
    expect(foreign.err.join('')).toMatch(/ERR_INVALID_ARGUMENT: weights .* is not the file job guarded was submitted with/);
    await ok(worker(job, join(dir, job), '--weights', copy));
    await expectJobOutput(join(dir, job), 4, 0);
    // A directory holding another job's images is not written into.
    await submit('guarded-2', '--count', '4', '--chunk', '4', '--seed-base', '1');
    const other = worker('guarded-2', join(dir, job));
    expect(await other.exit).toBe(1);
    expect(other.err.join('')).toMatch(/ERR_INVALID_ARGUMENT: .*guarded holds the output of another batch job/);
  }, 120_000);

  it('resubmitting resumes the same job and refuses other settings under its name', async () => {
    const job = 'resubmit';
    await submit(job, '--count', '8', '--chunk', '4', '--classes', 'circle,3-4,-1');
    const again = await submit(job, '--count', '8', '--chunk', '4', '--classes', 'circle,3-4,-1');
    expect(again.join('\n')).toMatch(/already submitted with these settings; 2 chunks queued/);
    await expect(batchCommand.run(['submit', '--redis', url, '--prefix', prefix, '--job', job, '--count', '9', '--chunk', '4']))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/already exists .* with other settings/) });
    const st = await batchStatus({ url, job, prefix });
    expect(st.spec.classes).toEqual([0, 3, 4, -1]);
    expect(st.chunks).toMatchObject({ total: 2, waiting: 2 });
  }, 60_000);

  it('refuses bad flags with stable codes and a message saying what to fix', async () => {
    const run = (...args: string[]) => batchCommand.run(args);
    const base = ['--redis', url, '--prefix', prefix, '--job', 'bad'];
    const cases: [string[], string, RegExp][] = [
      [['submit', '--job', 'x', '--count', '1'], 'ERR_INVALID_ARGUMENT', /--redis <url> is required/],
      [['submit', '--redis', 'http://127.0.0.1:6390', '--job', 'x', '--count', '1'], 'ERR_INVALID_ARGUMENT', /redis:\/\/host:port/],
      [['submit', '--redis', url, '--count', '1'], 'ERR_INVALID_ARGUMENT', /--job <name> is required/],
      [['submit', '--redis', url, '--job', 'a:b', '--count', '1'], 'ERR_INVALID_ARGUMENT', /--job must be/],
      [['submit', ...base], 'ERR_INVALID_ARGUMENT', /--count <N> is required/],
      [['submit', ...base, '--count', '0'], 'ERR_INVALID_ARGUMENT', /--count must be an integer in 1\.\.10000000/],
      [['submit', ...base, '--count', '2.5'], 'ERR_INVALID_ARGUMENT', /--count needs an integer/],
      [['submit', ...base, '--count', 'many'], 'ERR_INVALID_ARGUMENT', /--count needs an integer/],
      [['submit', ...base, '--count', '20000000'], 'ERR_INVALID_ARGUMENT', /--count must be an integer in 1\.\.10000000/],
      [['submit', ...base, '--count', '10', '--chunk', '0'], 'ERR_INVALID_ARGUMENT', /--chunk must be an integer in 1\.\.1024/],
      [['submit', ...base, '--count', '10', '--seed-base', '-1'], 'ERR_INVALID_ARGUMENT', /--seed-base must be/],
      [['submit', ...base, '--count', '10', '--classes', '10'], 'ERR_INVALID_ARGUMENT', /10 is not a class of this model \(0\.\.9/],
      [['submit', ...base, '--count', '10', '--classes', '5-2'], 'ERR_INVALID_ARGUMENT', /range 5-2/],
      [['submit', ...base, '--count', '10', '--classes', 'banana'], 'ERR_INVALID_ARGUMENT', /"banana" is not 'all'.*circle/],
      [['submit', ...base, '--count', '10', '--top-p', '2'], 'ERR_INVALID_ARGUMENT', /--top-p must be in \[0, 1\]/],
      [['submit', ...base, '--count', '10', '--top-k', '3000000000'], 'ERR_INVALID_ARGUMENT', /--top-k must be an integer in 0\.\.2147483647/],
      [['submit', ...base, '--count', '10', '--temperature', '0'], 'ERR_INVALID_ARGUMENT', /--temperature must be > 0/],
      [['submit', ...base, '--count', '10', '--model', 'gpt'], 'ERR_INVALID_ARGUMENT', /--model must be 'embedded'/],
      [['submit', ...base, '--count', '10', '--tokenizer', 'vae.pth'], 'ERR_INVALID_ARGUMENT', /--tokenizer and --weights go together/],
      [['submit', ...base, '--count', '10', '--bogus'], 'ERR_INVALID_ARGUMENT', /does not take --bogus/],
      [['launch', ...base], 'ERR_INVALID_ARGUMENT', /unknown batch subcommand "launch"/],
      [['work', ...base], 'ERR_INVALID_ARGUMENT', /--out <dir> is required/],
      [['work', ...base, '--out', dir, '--concurrency', '0'], 'ERR_INVALID_ARGUMENT', /--concurrency must be an integer in 1\.\.64/],
      [['work', ...base, '--out', dir, '--lock-ms', '10'], 'ERR_INVALID_ARGUMENT', /--lock-ms must be an integer in 500\.\./],
      [['work', ...base, '--out', dir], 'ERR_INVALID_ARGUMENT', /no batch job bad on .*submit it first/],
      [['status', ...base], 'ERR_INVALID_ARGUMENT', /no batch job bad/],
      [['clean', ...base], 'ERR_INVALID_ARGUMENT', /no batch job bad/],
      [['status', '--redis', url, '--job', 'x', '--prefix', 'a b'], 'ERR_INVALID_ARGUMENT', /--prefix must be/],
    ];
    for (const [args, code, message] of cases)
      await expect(run(...args), args.join(' ')).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    // Nothing listens on port 1: a prompt ERR_IO, not a client retrying forever.
    const t0 = Date.now();
    await expect(run('status', '--redis', 'redis://127.0.0.1:1', '--job', 'x')).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringMatching(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/) });
    expect(Date.now() - t0).toBeLessThan(6000);
    // Through the CLI: exit code 1 and the code on stderr.
    const p = tessera(['batch', 'submit', '--redis', url, '--job', 'x', '--count', '-3']);
    expect(await p.exit).toBe(1);
    expect(p.err.join('')).toMatch(/^tessera: ERR_INVALID_ARGUMENT: --count must be an integer in 1\.\.10000000, got -3/);
  }, 120_000);
});
