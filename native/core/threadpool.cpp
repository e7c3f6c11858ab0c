#include "tessera/threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
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
}  // namespace

struct ThreadPool::Impl {
  std::mutex job_mutex;  // one job at a time
  std::mutex m;
  std::condition_variable cv_start, cv_done;
  std::vector<std::thread> workers;
  uint64_t generation = 0;
  bool stop = false;
  int pending = 0;
  // the current job
  const std::function<void(int64_t, int64_t, int)>* fn = nullptr;
  int64_t n = 0, grain = 1;
  std::atomic<int64_t> next{0};
  std::exception_ptr worker_err;  // first exception thrown on a worker, guarded by m

  void run_chunks(int tid) {
    for (;;) {
      int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      (*fn)(b, e, tid);
    }
  }

  void worker(int tid) {
    t_in_pool = true;
    t_tid = tid;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m);
        cv_start.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      std::exception_ptr err;
      try {
        run_chunks(tid);
      } catch (...) {
        err = std::current_exception();
        next.store(n);  // stop handing out chunks
      }
      {
        std::lock_guard<std::mutex> lk(m);
        if (err && !worker_err) worker_err = err;
        if (--pending == 0) cv_done.notify_one();
      }
    }
  }

  void start(int nthreads) {
    stop = false;
    for (int t = 1; t < nthreads; ++t) workers.emplace_back([this, t] { worker(t); });
  }
  void join() {
    {
      std::lock_guard<std::mutex> lk(m);
      stop = true;
    }
    cv_start.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }
};

ThreadPool::ThreadPool(int n) : impl_(new Impl), nthreads_(n) { impl_->start(n); }

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
  {
    std::lock_guard<std::mutex> lk(I.m);
    I.fn = &fn;
    I.n = n;
    I.grain = grain;
    I.next.store(0, std::memory_order_relaxed);
    I.pending = nthreads_ - 1;
    ++I.generation;
  }
  I.cv_start.notify_all();
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
  {
    std::unique_lock<std::mutex> lk(I.m);
    I.cv_done.wait(lk, [&] { return I.pending == 0; });
    I.fn = nullptr;
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
