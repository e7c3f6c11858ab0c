// CUDA octree construction (CudaApi::octree_build) against the CPU build
// (tessera::octree_build, octree_neighbors) on random clouds: every depth's
// keys, children, counts, per-sample counts and 27-slot neighbour tables, the
// depth-D signals, the point→node map and the outside report must be equal —
// exactly, since both sides do the same integer work and sum the signals in
// double in the same order. Also the refusals (same rules as the CPU).
#include <cmath>
#include <cstdio>
#include <vector>

#include "cuda_util.h"
#include "tessera/octree.h"

using namespace tessera;

namespace {

struct Cloud {
  int64_t n = 0;
  int C = 0;
  std::vector<float> pts, nrm, feat;
  std::vector<int32_t> bid;
};

// Clustered points (so depths are sparse) plus a few outside the box and a
// few exactly on the faces.
Cloud random_cloud(th::Rng& rng, int64_t n, int C, int B, int outside) {
  Cloud c;
  c.n = n;
  c.C = C;
  for (int64_t i = 0; i < n; ++i) {
    const int cl = int(rng.randint(0, 5));
    for (int k = 0; k < 3; ++k) {
      const float centre = 0.6f * std::sin(1.7f * (cl + 1) * (k + 1));
      c.pts.push_back(std::fmax(-1.f, std::fmin(1.f, centre + 0.3f * rng.uniform())));
      c.nrm.push_back(rng.uniform());
    }
    for (int k = 0; k < C; ++k) c.feat.push_back(rng.uniform(-2, 2));
    c.bid.push_back(int32_t(rng.randint(0, B - 1)));
  }
  for (int j = 0; j < outside && j < n; ++j) c.pts[3 * rng.randint(0, n - 1) + rng.randint(0, 2)] = 1.f + 0.5f * rng.uniform(0.01f, 1);
  for (int j = 0; j < 5 && j < n; ++j) c.pts[3 * rng.randint(0, n - 1) + rng.randint(0, 2)] = j % 2 ? 1.f : -1.f;
  return c;
}

template <class T> std::vector<T> fetch_vec(const T* dev, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  if (n > 0) ct::call(ct::api().copy, int32_t(0), static_cast<void*>(h.data()), static_cast<const void*>(dev), size_t(n) * sizeof(T), int32_t(1));
  return h;
}
template <class A, class B> bool same(const A& a, const B& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

struct GpuTree {
  CudaOctree* t = nullptr;
  ~GpuTree() {
    if (t) { ErrBuf e{}; ct::api().octree_free(t, &e); }
  }
};

void check_case(int64_t n, int D, int F, int B, int C, bool normals, int outside, uint64_t salt) {
  th::Rng rng(salt);
  const Cloud c = random_cloud(rng, n, C, B, outside);
  // CPU
  OctreeBuildArgs a;
  std::vector<float> pts = c.pts, nrm = c.nrm, feat = c.feat;
  std::vector<int32_t> bid = c.bid;
  a.points = make_view(pts.data(), DType::kF32, {n, 3});
  if (normals) a.normals = make_view(nrm.data(), DType::kF32, {n, 3});
  if (C) a.features = make_view(feat.data(), DType::kF32, {n, int64_t(C)});
  if (B > 1) a.batch_ids = make_view(bid.data(), DType::kI32, {n});
  a.depth = D;
  a.full_depth = F;
  a.batch_size = B;
  OctreeBuildReport rep;
  const Octree o = octree_build(a, &rep);
  // GPU
  ct::DevBuf dp = ct::to_device(c.pts), dn = ct::to_device(c.nrm), db = ct::to_device(c.bid);
  ct::DevBuf df = C ? ct::to_device(c.feat) : ct::DevBuf();
  CudaOctreeBuildArgs g;
  g.points = static_cast<const float*>(dp.p);
  g.normals = normals ? static_cast<const float*>(dn.p) : nullptr;
  g.features = C ? static_cast<const float*>(df.p) : nullptr;
  g.feature_channels = C;
  g.batch_ids = B > 1 ? static_cast<const int32_t*>(db.p) : nullptr;
  g.n = n;
  g.depth = D;
  g.full_depth = F;
  g.batch_size = B;
  g.neighbors = 1;
  GpuTree t;
  ct::call(ct::api().octree_build, static_cast<const CudaOctreeBuildArgs*>(&g), &t.t);
  const CudaOctree& G = *t.t;
  char tag[128];
  std::snprintf(tag, sizeof(tag), "n=%lld D=%d F=%d B=%d C=%d", (long long)n, D, F, B, C);
  CHECK(G.depth == D && G.full_depth == F && G.batch_size == B) << tag;
  CHECK(G.points_used == rep.points_used && G.points_outside == rep.points_outside)
      << tag << " used " << G.points_used << " vs " << rep.points_used << ", outside " << G.points_outside << " vs "
      << rep.points_outside;
  CHECK(outside == 0 || rep.points_outside > 0) << tag << " the case should drop points";
  CHECK(same(fetch_vec(G.outside_per_sample, B), rep.outside_per_sample)) << tag << " outside per sample";
  CHECK(same(fetch_vec(G.point_node, n), rep.point_node)) << tag << " point_node";
  const OctreeView v = octree_view(o);
  int64_t nodes = 0;
  for (int d = 0; d <= D; ++d) {
    const CudaOctreeLevel& L = G.levels[d];
    const OctreeLevel& R = o.levels[d];
    nodes += L.nnum;
    CHECK(L.nnum == int64_t(R.keys.size()) && L.nnum_nempty == R.nnum_nempty)
        << tag << " depth " << d << " nnum " << L.nnum << "/" << R.keys.size() << " nempty " << L.nnum_nempty << "/"
        << R.nnum_nempty;
    if (L.nnum != int64_t(R.keys.size())) continue;
    CHECK(same(fetch_vec(L.keys, L.nnum), R.keys)) << tag << " keys, depth " << d;
    CHECK(same(fetch_vec(L.children, L.nnum), R.children)) << tag << " children, depth " << d;
    CHECK(same(fetch_vec(L.batch_nnum, B), R.batch_nnum)) << tag << " batch_nnum, depth " << d;
    CHECK(same(fetch_vec(L.batch_nnum_nempty, B), R.batch_nnum_nempty)) << tag << " batch_nnum_nempty, depth " << d;
    OctreeNeighborArgs na;
    na.depth = d;
    int64_t rows = 0;
    const std::vector<int32_t> ref = octree_neighbors(v, na, &rows);
    CHECK(rows == L.nnum && same(fetch_vec(L.neighbors, 27 * L.nnum), ref)) << tag << " neighbours, depth " << d;
  }
  const int64_t U = o.levels[D].nnum_nempty;
  CHECK(same(fetch_vec(G.points, 3 * U), o.points)) << tag << " points";
  if (normals) CHECK(G.normals && same(fetch_vec(G.normals, 3 * U), o.normals)) << tag << " normals";
  else CHECK(G.normals == nullptr) << tag;
  if (C) CHECK(G.features && same(fetch_vec(G.features, int64_t(C) * U), o.features)) << tag << " features";
  std::printf("    %s: %lld nodes, %lld leaves, %lld outside\n", tag, (long long)nodes, (long long)U,
              (long long)G.points_outside);
}

}  // namespace

TEST(cuda_octree_build_matches_cpu) {
  check_case(1, 1, 0, 1, 0, false, 0, 1);
  check_case(1000, 4, 2, 1, 0, true, 0, 2);
  check_case(20000, 7, 3, 1, 3, true, 7, 3);
  check_case(50000, 10, 2, 3, 2, true, 20, 4);
  check_case(30000, 6, 6, 2, 0, false, 0, 5);  // full depth = depth: every depth dense
  check_case(100000, 12, 4, 1, 0, true, 0, 6);
  check_case(5000, 16, 1, 5, 1, true, 3, 7);   // deepest keys, batch bits above bit 48
}

TEST(cuda_octree_build_all_points_outside) {
  Cloud c;
  c.n = 4;
  c.pts = {2, 0, 0, 0, -3, 0, 0, 0, 1.5f, 5, 5, 5};
  ct::DevBuf dp = ct::to_device(c.pts);
  CudaOctreeBuildArgs g;
  g.points = static_cast<const float*>(dp.p);
  g.n = 4;
  g.depth = 5;
  g.full_depth = 2;
  GpuTree t;
  ct::call(ct::api().octree_build, static_cast<const CudaOctreeBuildArgs*>(&g), &t.t);
  CHECK(t.t->points_outside == 4 && t.t->points_used == 0);
  CHECK(t.t->levels[5].nnum == 0 && t.t->levels[2].nnum == 64 && t.t->levels[2].nnum_nempty == 0);
  // the CPU gives the same tree
  OctreeBuildArgs a;
  a.points = make_view(c.pts.data(), DType::kF32, {4, 3});
  a.depth = 5;
  a.full_depth = 2;
  const Octree o = octree_build(a, nullptr);
  for (int d = 0; d <= 5; ++d) CHECK(int64_t(o.levels[d].keys.size()) == t.t->levels[d].nnum) << "depth " << d;
}

TEST(cuda_octree_build_rejects_bad_input) {
  std::vector<float> pts = {0.1f, 0.2f, 0.3f, -0.5f, 0.5f, 0.25f, 0.9f, -0.9f, 0.f};
  std::vector<int32_t> bids = {0, 1, 1};
  ct::DevBuf dp = ct::to_device(pts), db = ct::to_device(bids);
  CudaOctreeBuildArgs g;
  g.points = static_cast<const float*>(dp.p);
  g.n = 3;
  g.depth = 5;
  g.full_depth = 2;
  auto code = [](const CudaOctreeBuildArgs& x) {
    CudaOctree* t = nullptr;
    ErrBuf e{};
    const int rc = ct::api().octree_build(&x, &t, &e);
    if (t) ct::api().octree_free(t, &e);
    CHECK((rc == 0) == (t != nullptr)) << "a tree must come back exactly when the call succeeds";
    return rc;
  };
  CHECK(code(g) == 0);
  CudaOctreeBuildArgs b = g;
  b.depth = 17;
  CHECK(code(b) == int(Code::kInvalidArgument));
  b = g;
  b.full_depth = 6;
  CHECK(code(b) == int(Code::kInvalidArgument));
  b = g;
  b.n = 0;
  CHECK(code(b) == int(Code::kInvalidArgument));
  b = g;
  b.depth = b.full_depth = 16;  // 8^16 · 32768 dense nodes = 2^63: must be refused, not overflow int64
  b.batch_size = 32768;
  b.batch_ids = static_cast<const int32_t*>(db.p);
  CHECK(code(b) == int(Code::kInvalidArgument));
  b = g;
  b.points = pts.data();  // host memory
  CHECK(code(b) == int(Code::kDevice));
  b = g;
  b.batch_size = 2;  // needs batch ids
  CHECK(code(b) == int(Code::kInvalidArgument));
  b.batch_ids = static_cast<const int32_t*>(db.p);
  CHECK(code(b) == 0);
  b.batch_size = 1;  // id 1 out of range
  CHECK(code(b) == int(Code::kInvalidArgument));
  std::vector<float> bad = pts;
  bad[4] = NAN;
  ct::DevBuf dbad = ct::to_device(bad);
  b = g;
  b.points = static_cast<const float*>(dbad.p);
  CHECK(code(b) == int(Code::kInvalidArgument));
  std::vector<float> out = pts;
  out[0] = 1.5f;
  ct::DevBuf dout = ct::to_device(out);
  b = g;
  b.points = static_cast<const float*>(dout.p);
  CHECK(code(b) == 0);  // drop: counted
  b.outside = 1;
  CHECK(code(b) == int(Code::kInvalidArgument));  // error mode refuses it
}
