// `tessera batch submit|work|status|clean`: large offline generation jobs
// (for example 50,000 images for an FID run) split into chunks on a BullMQ
// queue in Redis, processed by any number of workers on any machines
// (lib/batch). BullMQ and ioredis take about a second to import on a busy
// machine, so lib/batch loads only when this command runs.
import type { WorkSummary } from '../batch/worker.js';
import { TesseraError } from '../errors.js';
import { parseArgs, type Command } from './args.js';
import { numberFlag } from './generate.js';

const COMMON = ['redis', 'job', 'prefix'];
const FLAGS: Record<string, { valued: string[]; boolean: string[] }> = {
  submit: {
    valued: [...COMMON, 'count', 'model', 'tokenizer', 'weights', 'classes', 'seed-base', 'chunk', 'cfg', 'top-k', 'top-p', 'temperature', 'attempts', 'backoff-ms'],
    boolean: ['tokens'],
  },
  work: { valued: [...COMMON, 'out', 'concurrency', 'lock-ms', 'tokenizer', 'weights'], boolean: [] },
  status: { valued: COMMON, boolean: ['json'] },
  clean: { valued: COMMON, boolean: ['force'] },
};

const USAGE = `Usage: tessera batch submit --redis <url> --job <name> --count <N>
         [--model embedded | --tokenizer <vae> --weights <var>] [--classes all|<ids>]
         [--seed-base 0] [--chunk 64] [--cfg x] [--top-k k] [--top-p p] [--temperature t]
         [--tokens] [--attempts 3] [--backoff-ms 5000]
       tessera batch work --redis <url> --job <name> --out <dir> [--concurrency 1]
         [--lock-ms 30000] [--tokenizer <vae> --weights <var>]
       tessera batch status --redis <url> --job <name> [--json]
       tessera batch clean --redis <url> --job <name> [--force]
       (every subcommand takes --prefix <p>, the BullMQ key prefix, default tessera)

A large offline job (for example 50,000 images for an FID run) as chunks on a
BullMQ queue in Redis; start any number of workers, on any machines that
reach the Redis server, and stop or kill them at any time.

Image i has class classes[i mod len] (--classes all: every class in turn;
or ids, ranges a-b, -1 for none, names of the embedded model's classes) and
seed seed-base + i, with the job's sampling (default: the embedded model's
evaluated settings, else cfg 1.5, top-k 900, top-p 0.96). It is written as
<out>/<i zero-padded to 6 digits>.png, byte-identical to
  tessera generate ... --class <c_i> --seed <seed-base + i> --batch 1
whichever worker or chunk made it. --tokens also writes each chunk's token
ids as <out>/tokens/<start>-<end>.npy (int32 [images, sum of pn^2], scales in
order). <out>/tessera-batch.json records the job's spec.

submit  records the job and queues ceil(count / chunk) chunks. Submitting
        the same job again with the same settings queues what is missing and
        retries failed chunks; other settings under the same name are refused.
        The model files' SHA-256 are recorded; workers refuse other files.
work    runs a worker until the job has no chunk left; exit code 0 when every
        chunk is done, 1 when some failed every attempt. Files are written to
        <out>/.partial, fsynced and renamed, so a crash never leaves a partial
        image; a chunk found complete on disk is not generated again. A
        failed chunk is retried --attempts times with exponential backoff; a
        killed worker's chunk returns to the queue once its lock (--lock-ms)
        expires. SIGINT/SIGTERM: finish the chunks in hand, then exit; a
        second signal releases them to the queue at the next scale and exits.
        --concurrency N keeps N chunks in flight (their model steps take
        turns; PNG encoding and writing overlap). --tokenizer/--weights give
        this machine's copies of the job's model files.
status  chunks done/running/waiting/failed, images done, images/s, workers.
clean   removes the job from Redis (files stay); --force even while chunks run.`;

function checkFlags(sub: string, flags: Map<string, string | true>): void {
  const allowed = FLAGS[sub]!;
  for (const name of flags.keys())
    if (name !== 'help' && !allowed.valued.includes(name) && !allowed.boolean.includes(name))
      throw new TesseraError('ERR_INVALID_ARGUMENT', `tessera batch ${sub} does not take --${name} (see tessera batch --help)`);
}

function required(flags: Map<string, string | true>, name: string, what: string): string {
  const v = flags.get(name);
  if (typeof v !== 'string' || v === '') throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} <${what}> is required`);
  return v;
}

const optional = (flags: Map<string, string | true>, name: string): string | undefined => {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
};

function optionalNumber(flags: Map<string, string | true>, name: string, integer = false): number | undefined {
  return flags.has(name) ? numberFlag(flags, name, 0, integer) : undefined;
}

async function work(f: Map<string, string | true>, target: { url: string; job: string; prefix?: string }): Promise<number> {
  const { startWorker } = await import('../batch/worker.js');
  const w = await startWorker({
    ...target, out: required(f, 'out', 'dir'), concurrency: optionalNumber(f, 'concurrency', true), lockMs: optionalNumber(f, 'lock-ms', true),
    tokenizer: optional(f, 'tokenizer'), weights: optional(f, 'weights'),
  });
  console.log(`worker ${w.name}: job ${w.spec.job}, ${w.spec.count} images in chunks of ${w.spec.chunk}`);
  let signals = 0;
  const onSignal = (sig: string): void => {
    signals++;
    if (signals === 1) console.log(`${sig}: finishing the chunks in hand, then exiting (send it again to release them now)`);
    else console.log(`${sig}: releasing the chunks in hand`);
    void w.stop(signals > 1);
  };
  const onInt = (): void => onSignal('SIGINT'), onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let s: WorkSummary;
  try {
    s = await w.finished;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  const rate = s.generated > 0 ? `, ${(s.generated / s.seconds).toFixed(2)} images/s` : '';
  console.log(`worker ${w.name}: ${s.end === 'done' ? 'job done' : 'stopped'}; ${s.chunks} chunks, ${s.generated} images generated` +
    `${s.images > s.generated ? ` (${s.images - s.generated} already on disk)` : ''} in ${s.seconds.toFixed(1)} s${rate}`);
  if (s.end === 'done' && s.failed > 0) {
    console.error(`tessera batch: ${s.failed} chunks of job ${w.spec.job} failed every attempt; see tessera batch status, and submit again to retry them`);
    return 1;
  }
  return 0;
}

export const batchCommand: Command = {
  name: 'batch',
  summary: 'large offline jobs split over worker processes/machines through a BullMQ queue on Redis',
  usage: USAGE,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (!(sub in FLAGS)) throw new TesseraError('ERR_INVALID_ARGUMENT', `unknown batch subcommand ${JSON.stringify(sub)}; use submit, work, status or clean`);
    const args = parseArgs(rest, FLAGS[sub]!.valued);
    if (args.flags.has('help')) { console.log(USAGE); return 0; }
    const f = args.flags;
    checkFlags(sub, f);
    if (args.positional.length > 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `unexpected argument ${args.positional[0]}`);
    const target = { url: required(f, 'redis', 'url'), job: required(f, 'job', 'name'), prefix: optional(f, 'prefix') };
    if (sub === 'submit') {
      if (!f.has('count')) throw new TesseraError('ERR_INVALID_ARGUMENT', '--count <N> is required (the number of images)');
      const { submitBatch } = await import('../batch/submit.js');
      const r = await submitBatch({
        ...target, count: numberFlag(f, 'count', 0, true), model: optional(f, 'model'), tokenizer: optional(f, 'tokenizer'), weights: optional(f, 'weights'),
        classes: optional(f, 'classes'), seedBase: optionalNumber(f, 'seed-base', true), chunk: optionalNumber(f, 'chunk', true),
        cfg: optionalNumber(f, 'cfg'), topK: optionalNumber(f, 'top-k', true), topP: optionalNumber(f, 'top-p'), temperature: optionalNumber(f, 'temperature'),
        tokens: f.has('tokens'), attempts: optionalNumber(f, 'attempts', true), backoffMs: optionalNumber(f, 'backoff-ms', true),
      });
      console.log(r.resumed
        ? `job ${r.spec.job}: already submitted with these settings; ${r.chunks} chunks queued${r.retried ? `, ${r.retried} failed chunks retried` : ''}`
        : `job ${r.spec.job}: ${r.spec.count} images in ${r.chunks} chunks of ${r.spec.chunk} queued; start workers with tessera batch work --redis <url> --job ${r.spec.job} --out <dir>`);
      return 0;
    }
    if (sub === 'work') return work(f, target);
    const { batchStatus, cleanBatch, formatStatus } = await import('../batch/status.js');
    if (sub === 'status') {
      const st = await batchStatus(target);
      console.log(f.has('json') ? JSON.stringify(st) : formatStatus(st));
      return 0;
    }
    await cleanBatch(target, f.has('force'));
    console.log(`job ${target.job}: removed from Redis (its files stay)`);
    return 0;
  },
};
