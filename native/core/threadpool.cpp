#include "tessera/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tessera/cpu.h"
#include "tessera/pool.h"
#include "tessera/status.h"

namespace tessera {

namespace {
thread_local bool t_in_pool = false;  // set on pool threads and on a caller while it runs a job
thread_local int t_tid = 0;           // this thread's tid inside the running job

int default_threads() {
  if (const char* e = std::getenv("TESSERA_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  return cpu_features().physical_cores;
}

constexpr int kMaxSpinUs = 10000;

int default_spin_us() {
  if (const char* e = std::getenv("TESSERA_SPIN_US")) {
    char* end = nullptr;
    long v = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && v >= 0 && v <= kMaxSpinUs) return static_cast<int>(v);
  }
  return 100;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls pred for at most `ns` nanoseconds; returns its last value. After the
// first ~64 polls (a pause is ~40-140 cycles) each poll also yields the CPU,
// so on a loaded machine a spinning thread hands its core to runnable threads
// instead of burning its time slice; on an idle one sched_yield returns at
// once. The clock is read after every yield.
template <class Pred>
bool spin_until(Pred pred, int64_t ns) {
  if (ns <= 0) return pred();
  const int64_t t0 = now_ns();
  for (uint32_t i = 1;; ++i) {
    if (pred()) return true;
    if (i < 64) {
      cpu_relax();
      continue;
    }
    std::this_thread::yield();
    if (now_ns() - t0 >= ns) return pred();
  }
}
}  // namespace

// Hand-off protocol. The caller publishes a job (fn, n, grain, next,
// published_ns), opens one slot per worker (slot = 2g for generation g) and
// bumps `generation` to g. A worker that sees generation g claims its slot
// (CAS 2g -> 2g+1) and only then reads the job, runs chunks and counts itself
// in `finished`. When the caller has no chunks left it closes every slot the
// same way: a slot it closes belongs to a worker that never joined (asleep or
// descheduled), so the caller waits only for the workers that did join and
// never for a late one to wake up just to find no work. A worker whose claim
// fails skips that job without touching it.
// Waiting is spin-then-sleep on both sides: a worker sleeps on cv_start only
// after its spin window and counts itself in `sleepers` under `m`, so the
// caller (which bumps the generation first and then reads `sleepers` under
// `m`) notifies only when someone sleeps and can never miss one. The caller
// sleeps on cv_done the same way, flagged by `caller_waiting`.
struct ThreadPool::Impl {
  std::mutex job_mutex;  // one job at a time
  std::mutex m;
  std::condition_variable cv_start, cv_done;
  std::vector<std::thread> workers;
  std::unique_ptr<std::atomic<uint64_t>[]> slots;  // [tid], tid >= 1
  std::atomic<uint64_t> generation{0};
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};  // workers of the current job that are done
  int sleepers = 0;              // workers blocked on cv_start, guarded by m
  bool caller_waiting = false;   // the caller blocks on cv_done, guarded by m
  std::atomic<int64_t> spin_ns{100000};
  // the current job (written before the generation bump, read after a claim)
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t n = 0, grain = 1;
  int64_t published_ns = 0;
  std::atomic<int64_t> next{0};
  std::exception_ptr worker_err;  // first exception thrown on a worker, guarded by m
  // statistics
  std::atomic<uint64_t> st_jobs{0}, st_starts{0}, st_wsleeps{0}, st_csleeps{0};
  std::atomic<int64_t> st_wake_ns{0}, st_join_ns{0};

  void run_chunks(int tid) {
    for (;;) {
      int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      (*fn)(b, e, tid);
    }
  }

  // Moves slot tid from open (2g) to closed (2g + 1); true if this call did it.
  bool claim(int tid, uint64_t g) {
    uint64_t open = 2 * g;
    return slots[tid].compare_exchange_strong(open, open + 1);
  }

  void worker(int tid, uint64_t seen) {
    t_in_pool = true;
    t_tid = tid;
    for (;;) {
      auto ready = [&] { return stop.load() || generation.load() != seen; };
      if (!spin_until(ready, spin_ns.load(std::memory_order_relaxed))) {
        std::unique_lock<std::mutex> lk(m);
        ++sleepers;
        st_wsleeps.fetch_add(1, std::memory_order_relaxed);
        cv_start.wait(lk, ready);
        --sleepers;
      }
      if (stop.load()) return;
      seen = generation.load();
      if (!claim(tid, seen)) continue;  // the caller finished without this worker
      st_starts.fetch_add(1, std::memory_order_relaxed);
      st_wake_ns.fetch_add(now_ns() - published_ns, std::memory_order_relaxed);
      std::exception_ptr err;
      try {
        run_chunks(tid);
      } catch (...) {
        err = std::current_exception();
        next.store(n);  // stop handing out chunks
      }
      if (err) {
        std::lock_guard<std::mutex> lk(m);
        if (!worker_err) worker_err = err;
      }
      finished.fetch_add(1);
      {
        std::lock_guard<std::mutex> lk(m);
        if (caller_waiting) cv_done.notify_one();
      }
    }
  }

  void start(int nthreads) {
    stop.store(false);
    const uint64_t g = generation.load();
    slots.reset(new std::atomic<uint64_t>[nthreads]);
    for (int t = 0; t < nthreads; ++t) slots[t].store(2 * g + 1);  // closed until the next job
    for (int t = 1; t < nthreads; ++t) workers.emplace_back([this, t, g] { worker(t, g); });
  }
  void join() {
    stop.store(true);
    {
      std::lock_guard<std::mutex> lk(m);  // a worker between its check and its wait holds m
    }
    cv_start.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }
};

ThreadPool::ThreadPool(int n) : impl_(new Impl), nthreads_(n) {
  impl_->spin_ns.store(int64_t(default_spin_us()) * 1000);
  impl_->start(n);
}

ThreadPool::~ThreadPool() {
  impl_->join();
  delete impl_;
}

ThreadPool& ThreadPool::global() {
  // Leaked on purpose: joining threads from a static destructor at process
  // exit races with the runtime tearing down.
  static ThreadPool* pool = new ThreadPool(default_threads());
  return *pool;
}

void ThreadPool::resize(int nthreads) {
  TESSERA_CHECK(nthreads >= 1 && nthreads <= 1024, kInvalidArgument,
                "thread count must be in [1, 1024], got " + std::to_string(nthreads));
  std::lock_guard<std::mutex> job(impl_->job_mutex);
  impl_->join();
  nthreads_ = nthreads;
  impl_->start(nthreads);
}

void ThreadPool::set_spin_us(int us) {
  TESSERA_CHECK(us >= 0 && us <= kMaxSpinUs, kInvalidArgument,
                "spin window must be in [0, " + std::to_string(kMaxSpinUs) + "] us, got " + std::to_string(us));
  impl_->spin_ns.store(int64_t(us) * 1000);
}

int ThreadPool::spin_us() const { return static_cast<int>(impl_->spin_ns.load() / 1000); }

ThreadPool::Stats ThreadPool::stats(bool reset) {
  Impl& I = *impl_;
  Stats s;
  auto take = [reset](auto& a) { return reset ? a.exchange(0) : a.load(); };
  s.jobs = take(I.st_jobs);
  s.worker_starts = take(I.st_starts);
  s.worker_sleeps = take(I.st_wsleeps);
  s.caller_sleeps = take(I.st_csleeps);
  s.wake_us = static_cast<double>(take(I.st_wake_ns)) / 1e3;
  s.join_us = static_cast<double>(take(I.st_join_ns)) / 1e3;
  return s;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (t_in_pool) {
    // Nested call (from inside a job): run inline on this thread with its own
    // tid. The outer kernel may hold this tid's scratch: nested kernels must
    // use other scratch slots.
    fn(0, n, t_tid);
    return;
  }
  // Even an inline run takes the job lock: tids index per-thread scratch, so
  // two callers (two libuv workers) must never run as tid 0 at the same time.
  std::lock_guard<std::mutex> job(impl_->job_mutex);
  if (nthreads_ == 1 || n <= grain) {
    t_in_pool = true;
    t_tid = 0;
    try {
      fn(0, n, 0);
    } catch (...) {
      t_in_pool = false;
      throw;
    }
    t_in_pool = false;
    return;
  }
  Impl& I = *impl_;
  I.fn = &fn;
  I.n = n;
  I.grain = grain;
  I.next.store(0, std::memory_order_relaxed);
  I.finished.store(0);
  I.published_ns = now_ns();
  const uint64_t g = I.generation.load() + 1;
  for (int t = 1; t < nthreads_; ++t) I.slots[t].store(2 * g);
  I.generation.store(g);  // publishes the fields above
  {
    std::lock_guard<std::mutex> lk(I.m);
    if (I.sleepers > 0) I.cv_start.notify_all();
  }
  I.st_jobs.fetch_add(1, std::memory_order_relaxed);
  t_in_pool = true;
  t_tid = 0;
  std::exception_ptr err;
  try {
    I.run_chunks(0);
  } catch (...) {
    err = std::current_exception();
    I.next.store(n);  // stop handing out chunks
  }
  t_in_pool = false;
  const int64_t t_done = now_ns();
  int joined = 0;  // workers that claimed the job before the caller closed it
  for (int t = 1; t < nthreads_; ++t) joined += I.claim(t, g) ? 0 : 1;
  auto all_done = [&] { return I.finished.load() == joined; };
  if (!spin_until(all_done, I.spin_ns.load(std::memory_order_relaxed))) {
    std::unique_lock<std::mutex> lk(I.m);
    I.caller_waiting = true;
    I.st_csleeps.fetch_add(1, std::memory_order_relaxed);
    I.cv_done.wait(lk, all_done);
    I.caller_waiting = false;
  }
  I.st_join_ns.fetch_add(now_ns() - t_done, std::memory_order_relaxed);
  I.fn = nullptr;
  {
    std::lock_guard<std::mutex> lk(I.m);
    if (!err && I.worker_err) err = I.worker_err;
    I.worker_err = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

namespace {
struct Scratch {
  void* p = nullptr;
  size_t cap = 0;
};
constexpr int kSlots = 8;
constexpr int kMaxThreads = 1024;
Scratch g_scratch[kMaxThreads][kSlots];
}  // namespace

void* thread_scratch(int tid, int slot, size_t bytes) {
  TESSERA_CHECK(tid >= 0 && tid < kMaxThreads && slot >= 0 && slot < kSlots, kInternal,
                "thread_scratch: tid or slot out of range");
  Scratch& s = g_scratch[tid][slot];
  if (s.cap < bytes) {
    if (s.p) host_release(s.p);
    s.p = nullptr;
    s.cap = 0;
    size_t cap = 0;
    s.p = host_acquire(bytes, &cap);
    s.cap = cap;
  }
  return s.p;
}

}  // namespace tessera
