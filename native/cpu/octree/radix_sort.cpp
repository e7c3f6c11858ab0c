// Parallel stable LSD radix sort of 64-bit keys with int32 payloads, 11-bit
// digits. A stable sort's output is unique, so the chunking (and the thread
// count) cannot change the result. Digits on which every key agrees are
// skipped (batch bits of a one-sample cloud). Passes ping-pong between the
// caller's arrays and pooled scratch: nothing is copied back.
#include <algorithm>
#include <numeric>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::octree {

void radix_sort_pairs(uint64_t** keys, int32_t** vals, int64_t n, int bits, uint64_t* key_tmp, int32_t* val_tmp,
                      bool vals_are_iota) {
  constexpr int kDigit = 11, kBuckets = 1 << kDigit;
  uint64_t* k = *keys;
  int32_t* v = *vals;
  auto& pool = ThreadPool::global();
  if (vals_are_iota && (n < 4096 || bits <= 0))
    pool.parallel_for(n, 65536, [&](int64_t i0, int64_t i1, int) { std::iota(v + i0, v + i1, static_cast<int32_t>(i0)); });
  if (n < 2 || bits <= 0) return;
  if (n < 4096) {  // small inputs: a stable comparison sort is cheaper than the passes
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return k[a] < k[b]; });
    for (int64_t i = 0; i < n; ++i) { key_tmp[i] = k[order[i]]; val_tmp[i] = v[order[i]]; }
    *keys = key_tmp;
    *vals = val_tmp;
    return;
  }
  const int64_t chunk = std::max<int64_t>(16384, (n + 63) / 64);
  const int64_t nchunks = (n + chunk - 1) / chunk;
  Scratch<int64_t> hist(static_cast<size_t>(nchunks) * kBuckets);
  uint64_t* kt = key_tmp;
  int32_t* vt = val_tmp;
  bool iota = vals_are_iota;
  for (int shift = 0; shift < bits; shift += kDigit) {
    pool.parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* h = &hist[c * kBuckets];
        std::fill(h, h + kBuckets, 0);
        const int64_t e = std::min(n, (c + 1) * chunk);
        for (int64_t i = c * chunk; i < e; ++i) ++h[(k[i] >> shift) & (kBuckets - 1)];
      }
    });
    // Skip a digit every key shares: the pass would be the identity.
    bool trivial = false;
    for (int d = 0; d < kBuckets && !trivial; ++d) {
      int64_t t = 0;
      for (int64_t c = 0; c < nchunks; ++c) t += hist[c * kBuckets + d];
      if (t == n) trivial = true;
      else if (t != 0) break;
    }
    if (trivial) continue;
    int64_t run = 0;  // offsets: digit-major, then chunk order (stability)
    for (int d = 0; d < kBuckets; ++d)
      for (int64_t c = 0; c < nchunks; ++c) {
        const int64_t t = hist[c * kBuckets + d];
        hist[c * kBuckets + d] = run;
        run += t;
      }
    pool.parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* h = &hist[c * kBuckets];
        const int64_t e = std::min(n, (c + 1) * chunk);
        for (int64_t i = c * chunk; i < e; ++i) {
          const int64_t dst = h[(k[i] >> shift) & (kBuckets - 1)]++;
          kt[dst] = k[i];
          vt[dst] = iota ? static_cast<int32_t>(i) : v[i];
        }
      }
    });
    iota = false;
    std::swap(k, kt);
    std::swap(v, vt);
  }
  if (iota)  // every digit was trivial: the order is the identity
    pool.parallel_for(n, 65536, [&](int64_t i0, int64_t i1, int) { std::iota(v + i0, v + i1, static_cast<int32_t>(i0)); });
  *keys = k;
  *vals = v;
}

void radix_sort_pairs(std::vector<uint64_t>& keys, std::vector<int32_t>& vals, int bits) {
  const int64_t n = static_cast<int64_t>(keys.size());
  Scratch<uint64_t> kt(n);
  Scratch<int32_t> vt(n);
  uint64_t* k = keys.data();
  int32_t* v = vals.data();
  radix_sort_pairs(&k, &v, n, bits, kt.data(), vt.data(), false);
  if (k != keys.data()) {
    std::copy(k, k + n, keys.data());
    std::copy(v, v + n, vals.data());
  }
}

void batch_counts(const int64_t* keys, const int32_t* children, int64_t n, int32_t batch_size,
                  std::vector<int64_t>* nnum, std::vector<int64_t>* nnum_nempty) {
  // Keys are sorted batch-major: each sample is one run, found by binary search.
  nnum->assign(batch_size, 0);
  nnum_nempty->assign(batch_size, 0);
  int64_t lo = 0;
  for (int32_t b = 0; b < batch_size; ++b) {
    const int64_t next = static_cast<int64_t>(b + 1) << kOctreeBatchShift;
    const int64_t hi = b + 1 == batch_size ? n : std::lower_bound(keys + lo, keys + n, next) - keys;
    (*nnum)[b] = hi - lo;
    int64_t ne = 0;
    for (int64_t i = lo; i < hi; ++i) ne += children[i] >= 0;
    (*nnum_nempty)[b] = ne;
    lo = hi;
  }
}

}  // namespace tessera::cpu::octree
