// One persistent pool of native threads for every CPU kernel.
// Size: TESSERA_NUM_THREADS, else the physical cores this process may use.
// Jobs from different callers (several libuv workers) are serialised; a
// parallel_for issued from inside a pool thread runs inline (no nesting).
// After a job, workers (and a caller waiting for them) spin for a bounded
// time (TESSERA_SPIN_US, default 100 us; 0 = never) before sleeping on a
// futex, so back-to-back small jobs (a decode step per token) do not pay a
// thread wake-up each; the spin never runs longer than that window.
#pragma once
#include <cstdint>
#include <functional>

namespace tessera {

class ThreadPool {
 public:
  static ThreadPool& global();
  int num_threads() const { return nthreads_; }

  // Calls fn(begin, end, tid) on chunks of [0, n) of at most `grain` items,
  // claimed dynamically (load balance for uneven work such as causal masks).
  // tid is in [0, num_threads()) and unique among concurrently running calls,
  // so it can index per-thread scratch.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t begin, int64_t end, int tid)>& fn);

  // Resizes the pool (tests, `TESSERA_NUM_THREADS`); waits for running jobs.
  void resize(int nthreads);

  // Spin window in microseconds (0..10000) before a waiting thread sleeps.
  void set_spin_us(int us);
  int spin_us() const;

  // Counters since the last reset (diagnostics for per-call overhead).
  struct Stats {
    uint64_t jobs = 0;           // parallel_for calls that used the workers
    uint64_t worker_starts = 0;  // worker joins of those jobs
    uint64_t worker_sleeps = 0;  // waits for a job that ended in a futex sleep
    uint64_t caller_sleeps = 0;  // callers that slept waiting for workers to finish
    double wake_us = 0;          // sum over worker starts: job published -> worker running
    double join_us = 0;          // sum over jobs: caller done with its chunks -> all workers done
  };
  Stats stats(bool reset);

  ~ThreadPool();

 private:
  explicit ThreadPool(int n);
  struct Impl;
  Impl* impl_;
  int nthreads_;
};

// Per-thread scratch memory that is kept and reused between calls (a fresh
// page costs ~12 us on first touch on our machines). Returns a 64-byte
// aligned block of at least `bytes`; valid until the next call with the same
// (tid, slot) inside the same job. Slots let one kernel hold several buffers.
void* thread_scratch(int tid, int slot, size_t bytes);

}  // namespace tessera
