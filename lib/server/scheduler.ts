// Admission and batching. Each lane (a model, or a scene) gathers the jobs
// that arrive within maxWaitMs (or until maxBatch images) and hands them to
// its runner as one cohort; a lane runs one cohort at a time, so the next
// cohort gathers while the current one computes. A bounded count of waiting
// jobs refuses the rest (429, as TGI refuses rather than queues). A job's
// signal (client gone or timeout) removes it from the queue at once, or from
// its cohort at the runner's next step.

export interface Job<P = unknown, R = unknown> {
  lane: string;
  /** Jobs with equal keys may share a cohort. */
  key: string;
  images: number;
  payload: P;
  signal: AbortSignal;
  enqueuedAt: number;
  resolve(value: R): void;
  reject(error: unknown): void;
  /** Removes the job from its queue when its signal aborts (detached once a cohort takes it). */
  onAbort?: () => void;
}

/** Runs a cohort; must settle every job. */
export type Runner = (jobs: Job[]) => Promise<void>;

export interface SchedulerOptions {
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
}

/** The queue is full: answer 429 with Retry-After. */
export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`the server is at capacity (queue full); retry in ${retryAfterSeconds} s`);
    this.name = 'QueueFullError';
  }
}

/** The server is shutting down and takes no new work (503). */
export class DrainingError extends Error {
  constructor() {
    super('the server is shutting down and accepts no new requests');
    this.name = 'DrainingError';
  }
}

interface Lane { queue: Job[]; timer?: NodeJS.Timeout; busy: boolean }

export interface SchedulerHooks {
  /** A cohort of `images` images from `jobs` jobs starts on `lane`. */
  onCohort?(lane: string, jobs: number, images: number): void;
  /** A job left the queue for a cohort after waiting `seconds`. */
  onDequeue?(lane: string, seconds: number): void;
}

export class Scheduler {
  #lanes = new Map<string, Lane>();
  #running = 0;
  #draining = false;
  #idle: (() => void)[] = [];
  /** Seconds per cohort, smoothed (Retry-After estimate). */
  #cohortSeconds = 1;

  constructor(readonly options: SchedulerOptions, private readonly runners: (lane: string) => Runner, private readonly hooks: SchedulerHooks = {}) {}

  get waiting(): number { let n = 0; for (const l of this.#lanes.values()) n += l.queue.length; return n; }
  get running(): number { return this.#running; }
  get draining(): boolean { return this.#draining; }

  /**
   * Queues a job. Throws QueueFullError or DrainingError synchronously, so a
   * caller can still answer with a status before it starts streaming.
   */
  submit<P, R>(lane: string, key: string, images: number, payload: P, signal: AbortSignal): Promise<R> {
    if (this.#draining) throw new DrainingError();
    if (this.waiting >= this.options.maxQueue) throw new QueueFullError(this.retryAfter());
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      const job: Job = { lane, key, images, payload, signal, enqueuedAt: performance.now(), resolve: resolve as (v: unknown) => void, reject };
      const l = this.#lane(lane);
      l.queue.push(job);
      // Detached when a cohort takes the job: a signal that outlives its request (one a host app
      // shares between calls) would otherwise collect one listener, holding the job, per request.
      job.onAbort = () => {
        const i = l.queue.indexOf(job);
        if (i >= 0) { l.queue.splice(i, 1); reject(signal.reason); this.#settleIdle(); }
      };
      signal.addEventListener('abort', job.onAbort, { once: true });
      this.#pump(lane);
    });
  }

  /** Seconds a refused client should wait: the cohorts ahead of it at the recent pace. */
  retryAfter(): number {
    const ahead = Math.ceil(this.waiting / Math.max(1, this.options.maxBatch)) + 1;
    return Math.max(1, Math.ceil(ahead * this.#cohortSeconds));
  }

  /** Refuses new jobs and resolves when every queued and running job has settled. */
  drain(): Promise<void> {
    this.#draining = true;
    return new Promise((resolve) => { this.#idle.push(resolve); this.#settleIdle(); });
  }

  #lane(name: string): Lane {
    let l = this.#lanes.get(name);
    if (!l) { l = { queue: [], busy: false }; this.#lanes.set(name, l); }
    return l;
  }

  #pump(name: string): void {
    const l = this.#lane(name);
    if (l.busy || l.queue.length === 0) return;
    const images = l.queue.reduce((a, j) => a + j.images, 0);
    const waited = performance.now() - l.queue[0]!.enqueuedAt;
    if (images >= this.options.maxBatch || waited >= this.options.maxWaitMs) {
      if (l.timer) { clearTimeout(l.timer); l.timer = undefined; }
      void this.#run(name, l);
    } else if (!l.timer) {
      l.timer = setTimeout(() => { l.timer = undefined; this.#pump(name); }, this.options.maxWaitMs - waited);
    }
  }

  /** The head job and every later job of its key that fits in maxBatch images (the head always runs). */
  #take(l: Lane): Job[] {
    const head = l.queue[0]!;
    const picked: Job[] = [];
    let images = 0;
    for (const j of l.queue) {
      if (j.key !== head.key) continue;
      if (picked.length > 0 && images + j.images > this.options.maxBatch) break;
      picked.push(j);
      images += j.images;
    }
    l.queue = l.queue.filter((j) => !picked.includes(j));
    for (const j of picked) if (j.onAbort) { j.signal.removeEventListener('abort', j.onAbort); j.onAbort = undefined; }
    return picked;
  }

  async #run(name: string, l: Lane): Promise<void> {
    l.busy = true;
    const jobs = this.#take(l);
    const now = performance.now();
    for (const j of jobs) this.hooks.onDequeue?.(name, (now - j.enqueuedAt) / 1000);
    this.hooks.onCohort?.(name, jobs.length, jobs.reduce((a, j) => a + j.images, 0));
    this.#running += jobs.length;
    try {
      await this.runners(name)(jobs);
    } catch (e) {
      for (const j of jobs) j.reject(e);  // a runner that throws still settles its jobs (extra settles are no-ops)
    } finally {
      this.#running -= jobs.length;
      this.#cohortSeconds = 0.7 * this.#cohortSeconds + 0.3 * ((performance.now() - now) / 1000);
      l.busy = false;
      this.#settleIdle();
      this.#pump(name);
    }
  }

  #settleIdle(): void {
    if (this.#running > 0 || this.waiting > 0) return;
    for (const r of this.#idle.splice(0)) r();
  }
}
