// build_octree (ocnn-pytorch Octree.build_octree): key the points, sort and
// unique the depth-D keys, then walk up to the full depth taking the unique
// parents and giving every parent all 8 children.
//
// Inside the build a node is named by its compact key (b << 3d) | key, so the
// parent of a compact key is simply ck >> 3 (the batch bits move down with
// the key) and ocnn's "re-insert the batch bits at 48" step is not needed; the
// stored keys use ocnn's layout (b << 48) | key.
#include <algorithm>
#include <cmath>
#include <string>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::octree {
namespace {

int64_t to_ocnn_key(uint64_t ck, int d) {
  const uint64_t cell_mask = (d == 0) ? 0 : ((uint64_t(1) << (3 * d)) - 1);
  return static_cast<int64_t>(((ck >> (3 * d)) << kOctreeBatchShift) | (ck & cell_mask));
}

// Row i of a [N, C] float32 view (any strides).
inline float at(const TensorView& t, int64_t i, int64_t c) {
  return t.ptr<float>()[i * t.strides[0] + c * t.strides[1]];
}

}  // namespace

Octree build(const OctreeBuildArgs& a, OctreeBuildReport* report) {
  const int D = a.depth, F = a.full_depth, B = a.batch_size;
  const int64_t N = a.points.shape[0];
  const float scale = std::ldexp(1.f, D - 1);  // [-1,1] -> [0, 2^D]
  const uint32_t last = (1u << D) - 1;
  const int32_t* bids = a.batch_ids.empty() ? nullptr : a.batch_ids.ptr<int32_t>();
  const int64_t bstride = bids ? a.batch_ids.strides[0] : 0;

  // 1. Key every point; mark the ones outside the box (NaN/Inf are refused by
  //    validation before we get here).
  std::vector<uint64_t> ck(N);
  std::vector<uint8_t> inside(N);
  ThreadPool::global().parallel_for(N, 16384, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t cell[3];
      bool ok = true;
      for (int c = 0; c < 3; ++c) {
        const float p = at(a.points, i, c);
        if (!(p >= -1.f && p <= 1.f)) { ok = false; break; }
        const float q = (p + 1.f) * scale;
        cell[c] = std::min(static_cast<uint32_t>(q), last);  // p = +1 -> last cell
      }
      inside[i] = ok;
      const uint64_t b = bids ? static_cast<uint64_t>(bids[i * bstride]) : 0;
      ck[i] = ok ? ((b << (3 * D)) | xyz_key(cell[0], cell[1], cell[2])) : 0;
    }
  });
  OctreeBuildReport rep;
  rep.outside_per_sample.assign(B, 0);
  std::vector<uint64_t> keys;
  std::vector<int32_t> idx;
  keys.reserve(N);
  idx.reserve(N);
  for (int64_t i = 0; i < N; ++i) {
    if (inside[i]) {
      keys.push_back(ck[i]);
      idx.push_back(static_cast<int32_t>(i));
    } else {
      ++rep.outside_per_sample[bids ? bids[i * bstride] : 0];
    }
  }
  rep.points_used = static_cast<int64_t>(keys.size());
  rep.points_outside = N - rep.points_used;
  if (a.outside == OctreeOutside::kError && rep.points_outside > 0)
    throw Error(Code::kInvalidArgument,
                "octree build: " + std::to_string(rep.points_outside) + " of " + std::to_string(N) +
                    " points lie outside [-1, 1]^3; normalise the cloud (ocnn convention) or pass outside: 'drop'");
  { std::vector<uint64_t>().swap(ck); }

  // 2. Sort (batch-major z-order) and unique.
  radix_sort_pairs(keys, idx, 3 * D + bit_length(static_cast<uint64_t>(B - 1)));
  const int64_t M = static_cast<int64_t>(keys.size());
  std::vector<int64_t> start;  // first sorted point of each unique node, plus M
  std::vector<uint64_t> node_key;
  for (int64_t s = 0; s < M; ++s)
    if (s == 0 || keys[s] != keys[s - 1]) {
      start.push_back(s);
      node_key.push_back(keys[s]);
    }
  const int64_t U = static_cast<int64_t>(node_key.size());
  start.push_back(M);

  Octree o;
  o.depth = D;
  o.full_depth = F;
  o.batch_size = B;
  o.levels.resize(D + 1);
  rep.point_node.assign(N, -1);

  // 3. Depth-D signals: mean point (cell units), normalised normal sum, mean features.
  const bool has_n = !a.normals.empty(), has_f = !a.features.empty();
  const int64_t C = has_f ? a.features.shape[1] : 0;
  o.points.resize(U * 3);
  if (has_n) o.normals.resize(U * 3);
  if (has_f) o.features.resize(U * C);
  o.feature_channels = static_cast<int32_t>(C);
  o.has_points = true;
  o.has_normals = has_n;
  o.has_features = has_f;
  ThreadPool::global().parallel_for(U, 1024, [&](int64_t u0, int64_t u1, int) {
    std::vector<double> acc(std::max<int64_t>(C, 3));
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t s0 = start[u], s1 = start[u + 1];
      const double inv = 1.0 / static_cast<double>(s1 - s0);
      double p[3] = {0, 0, 0}, nn[3] = {0, 0, 0};
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = s0; s < s1; ++s) {
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

  // 4. Depths D .. F+1: parents = unique(ck >> 3); 8 children per parent.
  for (int d = D; d > F; --d) {
    OctreeLevel& L = o.levels[d];
    std::vector<uint64_t> parent;
    std::vector<int64_t> pidx(node_key.size());
    for (size_t u = 0; u < node_key.size(); ++u) {
      const uint64_t pk = node_key[u] >> 3;
      if (parent.empty() || parent.back() != pk) parent.push_back(pk);
      pidx[u] = static_cast<int64_t>(parent.size()) - 1;
    }
    const int64_t P = static_cast<int64_t>(parent.size());
    L.keys.resize(P * 8);
    L.children.assign(P * 8, -1);
    ThreadPool::global().parallel_for(P, 8192, [&](int64_t j0, int64_t j1, int) {
      for (int64_t j = j0; j < j1; ++j)
        for (int c = 0; c < 8; ++c) L.keys[j * 8 + c] = to_ocnn_key((parent[j] << 3) | c, d);
    });
    for (size_t u = 0; u < node_key.size(); ++u)
      L.children[pidx[u] * 8 + (node_key[u] & 7)] = static_cast<int32_t>(u);
    L.nnum_nempty = static_cast<int64_t>(node_key.size());
    node_key.swap(parent);
  }

  // 5. Depths 0 .. F are dense; at F the children mark the occupied cells
  //    (the compact key of a dense node is its index b·8^F + key).
  for (int d = 0; d <= F; ++d) {
    OctreeLevel& L = o.levels[d];
    const int64_t per = int64_t(1) << (3 * d), n = per * B;
    L.keys.resize(n);
    L.children.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      L.keys[i] = to_ocnn_key(static_cast<uint64_t>(i), d);
      L.children[i] = static_cast<int32_t>(i);
    }
    L.nnum_nempty = n;
    if (d == F) {
      std::fill(L.children.begin(), L.children.end(), -1);
      for (size_t u = 0; u < node_key.size(); ++u) L.children[node_key[u]] = static_cast<int32_t>(u);
      L.nnum_nempty = static_cast<int64_t>(node_key.size());
    }
  }
  for (auto& L : o.levels)
    batch_counts(L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), B, &L.batch_nnum,
                 &L.batch_nnum_nempty);
  if (report) *report = std::move(rep);
  return o;
}

}  // namespace tessera::cpu::octree
