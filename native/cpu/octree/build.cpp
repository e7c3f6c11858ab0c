// build_octree (ocnn-pytorch Octree.build_octree): key the points, sort and
// unique the depth-D keys, then walk up to the full depth taking the unique
// parents and giving every parent all 8 children.
//
// Inside the build a node is named by its compact key (b << 3d) | key, so the
// parent of a compact key is simply ck >> 3 (the batch bits move down with
// the key) and ocnn's "re-insert the batch bits at 48" step is not needed; the
// stored keys use ocnn's layout (b << 48) | key.
//
// Every pass is parallel over fixed chunks (counts per chunk, an exclusive
// scan, then writes at the scanned offsets), so the tree does not depend on
// the thread count. Scratch comes from the host pool and the output arrays
// are OctreeArrays (pooled, not zero-filled): a repeated build touches no
// fresh pages (test/native/test_octree.cpp checks results against brute force).
#include <algorithm>
#include <cmath>
#include <string>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::octree {
namespace {

constexpr int64_t kChunk = 32768;
constexpr uint64_t kOutsideKey = ~uint64_t(0);  // above any real compact key (< 2^63)

int64_t to_ocnn_key(uint64_t ck, int d) {
  const uint64_t cell_mask = (d == 0) ? 0 : ((uint64_t(1) << (3 * d)) - 1);
  return static_cast<int64_t>(((ck >> (3 * d)) << kOctreeBatchShift) | (ck & cell_mask));
}

// Row i of a [N, C] float32 view (any strides).
inline float at(const TensorView& t, int64_t i, int64_t c) {
  return t.ptr<float>()[i * t.strides[0] + c * t.strides[1]];
}

inline int64_t chunks_of(int64_t n) { return (n + kChunk - 1) / kChunk; }

// Exclusive scan of counts[0..n) in place; returns the total.
int64_t exclusive_scan(int64_t* counts, int64_t n) {
  int64_t run = 0;
  for (int64_t c = 0; c < n; ++c) {
    const int64_t t = counts[c];
    counts[c] = run;
    run += t;
  }
  return run;
}

// Positions s of a sorted array where a run of equal values of f(s) starts,
// written to starts (sized by the caller from the returned count when starts
// is null). Two passes over fixed chunks.
template <class Key>
int64_t run_starts(int64_t n, Key key, Scratch<int64_t>& chunk_base, int64_t* starts) {
  auto& pool = ThreadPool::global();
  const int64_t nc = chunks_of(n);
  if (!starts) {
    pool.parallel_for(nc, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t cnt = 0;
        const int64_t e = std::min(n, (c + 1) * kChunk);
        for (int64_t s = c * kChunk; s < e; ++s) cnt += (s == 0 || key(s) != key(s - 1));
        chunk_base[c] = cnt;
      }
    });
    return exclusive_scan(chunk_base.data(), nc);
  }
  pool.parallel_for(nc, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t j = chunk_base[c];
      const int64_t e = std::min(n, (c + 1) * kChunk);
      for (int64_t s = c * kChunk; s < e; ++s)
        if (s == 0 || key(s) != key(s - 1)) starts[j++] = s;
    }
  });
  return 0;
}

}  // namespace

Octree build(const OctreeBuildArgs& a, OctreeBuildReport* report) {
  const int D = a.depth, F = a.full_depth, B = a.batch_size;
  const int64_t N = a.points.shape[0];
  const float scale = std::ldexp(1.f, D - 1);  // [-1,1] -> [0, 2^D]
  const uint32_t last = (1u << D) - 1;
  const int32_t* bids = a.batch_ids.empty() ? nullptr : a.batch_ids.ptr<int32_t>();
  const int64_t bstride = bids ? a.batch_ids.strides[0] : 0;
  auto& pool = ThreadPool::global();

  // 1. Key every point; points outside the box get kOutsideKey (NaN/Inf are
  //    refused by validation before we get here).
  Scratch<uint64_t> kbuf(N), ktmp(N);
  Scratch<int32_t> vbuf(N), vtmp(N);
  const int64_t nc = chunks_of(N);
  Scratch<int64_t> chunk_base(std::max<int64_t>(nc, 1));
  pool.parallel_for(nc, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t used = 0;
      const int64_t e = std::min(N, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < e; ++i) {
        uint32_t cell[3];
        bool ok = true;
        for (int k = 0; k < 3; ++k) {
          const float p = at(a.points, i, k);
          if (!(p >= -1.f && p <= 1.f)) { ok = false; break; }
          cell[k] = std::min(static_cast<uint32_t>((p + 1.f) * scale), last);  // p = +1 -> last cell
        }
        const uint64_t b = bids ? static_cast<uint64_t>(bids[i * bstride]) : 0;
        kbuf[i] = ok ? ((b << (3 * D)) | xyz_key(cell[0], cell[1], cell[2])) : kOutsideKey;
        used += ok;
      }
      chunk_base[c] = used;
    }
  });
  const int64_t M = exclusive_scan(chunk_base.data(), nc);

  OctreeBuildReport rep;
  rep.outside_per_sample.assign(B, 0);
  rep.points_used = M;
  rep.points_outside = N - M;
  if (M < N)
    for (int64_t i = 0; i < N; ++i)
      if (kbuf[i] == kOutsideKey) ++rep.outside_per_sample[bids ? bids[i * bstride] : 0];
  if (a.outside == OctreeOutside::kError && rep.points_outside > 0)
    throw Error(Code::kInvalidArgument,
                "octree build: " + std::to_string(rep.points_outside) + " of " + std::to_string(N) +
                    " points lie outside [-1, 1]^3; normalise the cloud (ocnn convention) or pass outside: 'drop'");

  // 2. Sort (batch-major z-order) the keys of the points inside, with their
  //    point indices (identity when no point is left out).
  //    A point left out keeps node -1; the others get theirs in step 4.
  uint64_t* keys = kbuf.data();
  int32_t* idx = vbuf.data();
  uint64_t* key_tmp = ktmp.data();
  int32_t* idx_tmp = vtmp.data();
  rep.point_node.resize(N);
  if (M < N) {
    pool.parallel_for(nc, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t j = chunk_base[c];
        const int64_t e = std::min(N, (c + 1) * kChunk);
        for (int64_t i = c * kChunk; i < e; ++i)
          if (kbuf[i] != kOutsideKey) { ktmp[j] = kbuf[i]; vtmp[j++] = static_cast<int32_t>(i); }
          else rep.point_node[i] = -1;
      }
    });
    std::swap(keys, key_tmp);
    std::swap(idx, idx_tmp);
  }
  radix_sort_pairs(&keys, &idx, M, 3 * D + bit_length(static_cast<uint64_t>(B - 1)), key_tmp, idx_tmp, M == N);
  key_tmp = keys == kbuf.data() ? ktmp.data() : kbuf.data();  // the buffer the sort did not end in

  // 3. Unique: start[u] = first sorted point of node u, start[U] = M.
  const int64_t mc = chunks_of(M);
  Scratch<int64_t> base(std::max<int64_t>(mc, 1));
  auto key_at = [&](int64_t s) { return keys[s]; };
  const int64_t U = run_starts(M, key_at, base, nullptr);
  Scratch<int64_t> start(U + 1);
  run_starts(M, key_at, base, start.data());
  start[U] = M;

  Octree o;
  o.depth = D;
  o.full_depth = F;
  o.batch_size = B;
  o.levels.resize(D + 1);

  // 4. Depth-D signals: mean point (cell units), normalised normal sum, mean
  //    features, summed in sorted order (float64), and each point's node.
  const bool has_n = !a.normals.empty(), has_f = !a.features.empty();
  const int64_t C = has_f ? a.features.shape[1] : 0;
  o.points.resize(U * 3);
  if (has_n) o.normals.resize(U * 3);
  if (has_f) o.features.resize(U * C);
  o.feature_channels = static_cast<int32_t>(C);
  o.has_points = true;
  o.has_normals = has_n;
  o.has_features = has_f;
  const float* pp = a.points.ptr<float>();
  const float* np = has_n ? a.normals.ptr<float>() : nullptr;
  const int64_t ps0 = a.points.strides[0], ns0 = has_n ? a.normals.strides[0] : 0;
  pool.parallel_for(U, 4096, [&](int64_t u0, int64_t u1, int) {
    std::vector<double> acc(std::max<int64_t>(C, 1));
    const int64_t s_end = start[u1];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t s0 = start[u], s1 = start[u + 1];
      const double inv = 1.0 / static_cast<double>(s1 - s0);
      double p[3] = {0, 0, 0}, nn[3] = {0, 0, 0};
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = s0; s < s1; ++s) {
        if (s + 16 < s_end) {  // the points are read in sorted order: a gather
          const int64_t f = idx[s + 16];
          __builtin_prefetch(pp + f * ps0);
          if (np) __builtin_prefetch(np + f * ns0);
          __builtin_prefetch(&rep.point_node[f], 1);
        }
        const int64_t i = idx[s];
        rep.point_node[i] = static_cast<int32_t>(u);
        for (int c = 0; c < 3; ++c) p[c] += (static_cast<double>(at(a.points, i, c)) + 1.0) * scale;
        if (has_n)
          for (int c = 0; c < 3; ++c) nn[c] += at(a.normals, i, c);
        for (int64_t c = 0; c < C; ++c) acc[c] += at(a.features, i, c);
      }
      for (int c = 0; c < 3; ++c) o.points[u * 3 + c] = static_cast<float>(p[c] * inv);
      if (has_n) {  // F.normalize: x / max(|x|, 1e-12)
        const double len = std::max(std::sqrt(nn[0] * nn[0] + nn[1] * nn[1] + nn[2] * nn[2]), 1e-12);
        for (int c = 0; c < 3; ++c) o.normals[u * 3 + c] = static_cast<float>(nn[c] / len);
      }
      for (int64_t c = 0; c < C; ++c) o.features[u * C + c] = static_cast<float>(acc[c] * inv);
    }
  });

  // 5. Depths D .. F+1: parents = unique(ck >> 3); 8 children per parent.
  //    node_key (this depth's non-empty nodes) and parent ping-pong between
  //    two pooled buffers (the sorted keys are no longer needed).
  uint64_t* node_key = key_tmp;
  pool.parallel_for(U, 65536, [&](int64_t u0, int64_t u1, int) {
    for (int64_t u = u0; u < u1; ++u) node_key[u] = keys[start[u]];
  });
  uint64_t* parent = keys;
  int64_t nu = U;
  for (int d = D; d > F; --d) {
    OctreeLevel& L = o.levels[d];
    auto pkey = [&](int64_t u) { return node_key[u] >> 3; };
    const int64_t uc = chunks_of(nu);
    const int64_t P = run_starts(nu, pkey, base, nullptr);  // base: first parent of each chunk
    L.keys.resize(P * 8);
    L.children.resize(P * 8);
    pool.parallel_for(P * 8, 65536, [&](int64_t i0, int64_t i1, int) {
      std::fill(L.children.data() + i0, L.children.data() + i1, -1);
    });
    pool.parallel_for(uc, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; ++c) {
        int64_t j = base[c] - 1;
        const int64_t e = std::min(nu, (c + 1) * kChunk);
        for (int64_t u = c * kChunk; u < e; ++u) {
          if (u == 0 || pkey(u) != pkey(u - 1)) parent[++j] = pkey(u);  // else: the parent of u - 1 (maybe the previous chunk's)
          L.children[j * 8 + (node_key[u] & 7)] = static_cast<int32_t>(u);
        }
      }
    });
    pool.parallel_for(P, 8192, [&](int64_t j0, int64_t j1, int) {
      for (int64_t j = j0; j < j1; ++j)
        for (int c = 0; c < 8; ++c) L.keys[j * 8 + c] = to_ocnn_key((parent[j] << 3) | c, d);
    });
    L.nnum_nempty = nu;
    std::swap(node_key, parent);
    nu = P;
  }

  // 6. Depths 0 .. F are dense; at F the children mark the occupied cells
  //    (the compact key of a dense node is its index b·8^F + key).
  for (int d = 0; d <= F; ++d) {
    OctreeLevel& L = o.levels[d];
    const int64_t per = int64_t(1) << (3 * d), n = per * B;
    L.keys.resize(n);
    L.children.resize(n);
    pool.parallel_for(n, 65536, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        L.keys[i] = to_ocnn_key(static_cast<uint64_t>(i), d);
        L.children[i] = d == F ? -1 : static_cast<int32_t>(i);
      }
    });
    L.nnum_nempty = n;
    if (d == F) {
      for (int64_t u = 0; u < nu; ++u) L.children[node_key[u]] = static_cast<int32_t>(u);
      L.nnum_nempty = nu;
    }
  }
  for (auto& L : o.levels) {
    if (B == 1) {  // one sample: the counts are the level's
      L.batch_nnum.assign(1, static_cast<int64_t>(L.keys.size()));
      L.batch_nnum_nempty.assign(1, L.nnum_nempty);
    } else {
      batch_counts(L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), B, &L.batch_nnum,
                   &L.batch_nnum_nempty);
    }
  }
  if (report) *report = std::move(rep);
  return o;
}

}  // namespace tessera::cpu::octree
