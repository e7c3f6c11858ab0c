// The batching scheduler on its own (no models): what it holds on to after
// a job has left its queue.
import { getEventListeners } from 'node:events';

import { describe, expect, it } from 'vitest';

import { Scheduler, type Job } from '../lib/server/scheduler.js';

describe('scheduler', () => {
  it('detaches its abort listener when a cohort takes a job (a long-lived shared signal collects none)', async () => {
    const runner = async (jobs: Job[]): Promise<void> => { for (const j of jobs) j.resolve(j.payload); };
    const s = new Scheduler({ maxBatch: 4, maxWaitMs: 1, maxQueue: 64 }, () => runner);
    const shared = new AbortController().signal;  // e.g. a host app's shutdown signal, passed to every call
    for (let i = 0; i < 30; i++) expect(await s.submit('m', 'k', 1, i, shared)).toBe(i);
    expect(getEventListeners(shared, 'abort')).toHaveLength(0);
    // A job still waiting keeps its listener, and an abort then removes it from the queue.
    const ac = new AbortController();
    const blocked = new Scheduler({ maxBatch: 1, maxWaitMs: 1, maxQueue: 8 }, () => () => new Promise<void>(() => {}));
    void blocked.submit('m', 'k', 1, 0, ac.signal).catch(() => undefined);  // runs (and never ends)
    await new Promise((r) => setTimeout(r, 20));
    const waiting = blocked.submit('m', 'k', 1, 1, ac.signal);
    expect(blocked.waiting).toBe(1);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    ac.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(blocked.waiting).toBe(0);
  });
});
