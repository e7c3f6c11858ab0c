// Octree family (tessera/octree.h) against brute-force references written
// from ocnn's conventions (spec/octree.md §1-3): keys by a plain per-bit
// interleaving loop, nodes by sets of occupied cells, neighbours by
// coordinate lookup, Hilbert by PTv3's bit-array algorithm, windowed
// attention by a dense float64 softmax over each token's window.
// Integer results must match exactly. Signals are float32 means of a few
// points (rel. 1e-6); dwconv sums <= 27 fp32 products (1e-6); attention
// goes through the fp32 fused kernel (2e-5, as in test_attention.cpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/attention.h"
#include "tessera/octree.h"
#include "tessera/threadpool.h"

using namespace tessera;

namespace {

uint64_t naive_key(uint64_t x, uint64_t y, uint64_t z, int d) {
  uint64_t k = 0;
  for (int i = 0; i < d; ++i)
    k |= (((x >> i) & 1) << (3 * i + 2)) | (((y >> i) & 1) << (3 * i + 1)) | (((z >> i) & 1) << (3 * i));
  return k;
}
void naive_xyz(uint64_t k, int d, uint64_t* x, uint64_t* y, uint64_t* z) {
  *x = *y = *z = 0;
  for (int i = 0; i < d; ++i) {
    *x |= ((k >> (3 * i + 2)) & 1) << i;
    *y |= ((k >> (3 * i + 1)) & 1) << i;
    *z |= ((k >> (3 * i)) & 1) << i;
  }
}

struct Cloud {
  int64_t n = 0;
  std::vector<float> pts, nrm, feat;  // [n,3], [n,3], [n,C]
  std::vector<int32_t> bid;
  int C = 2, B = 1;
};

// Random cloud with the edge cases: duplicated points, coordinates on the
// box faces (±1), points just outside the box, and (B >= 3) an empty sample 1.
Cloud random_cloud(uint64_t salt, int64_t n, int B, bool outside) {
  th::Rng rng(salt);
  Cloud c;
  c.B = B;
  for (int64_t i = 0; i < n; ++i) {
    int32_t b = static_cast<int32_t>(rng.randint(0, B - 1));
    if (B >= 3 && b == 1) b = 2;
    float p[3];
    for (float& v : p) v = rng.uniform(-0.999f, 0.999f);
    const int64_t kind = rng.randint(0, 19);
    if (kind == 0 && i > 0) {  // duplicate of the previous point
      for (int a = 0; a < 3; ++a) p[a] = c.pts[(c.n - 1) * 3 + a];
      b = c.bid[c.n - 1];
    } else if (kind == 1) {
      p[rng.randint(0, 2)] = rng.randint(0, 1) ? 1.f : -1.f;
    } else if (kind == 2 && outside) {
      p[rng.randint(0, 2)] = rng.randint(0, 1) ? 1.0001f : -1.5f;
    }
    for (float v : p) c.pts.push_back(v);
    for (int a = 0; a < 3; ++a) c.nrm.push_back(rng.uniform());
    for (int k = 0; k < c.C; ++k) c.feat.push_back(rng.uniform());
    c.bid.push_back(b);
    ++c.n;
  }
  return c;
}

OctreeBuildArgs args_of(Cloud& c, int D, int F) {
  OctreeBuildArgs a;
  a.points = make_view(c.pts.data(), DType::kF32, {c.n, 3});
  a.normals = make_view(c.nrm.data(), DType::kF32, {c.n, 3});
  a.features = make_view(c.feat.data(), DType::kF32, {c.n, c.C});
  if (c.B > 1) a.batch_ids = make_view(c.bid.data(), DType::kI32, {c.n});
  a.depth = D;
  a.full_depth = F;
  a.batch_size = c.B;
  return a;
}

using Node = std::pair<int64_t, uint64_t>;  // (batch, cell key)

struct RefTree {
  std::vector<std::vector<Node>> nodes;     // per depth, sorted
  std::vector<std::vector<int32_t>> child;  // per depth
  std::map<Node, std::vector<int64_t>> leaf_points;
  int64_t outside = 0;
};

RefTree ref_build(const Cloud& c, int D, int F) {
  RefTree r;
  std::vector<std::set<Node>> occ(D + 1);
  const double side = std::ldexp(1.0, D);
  for (int64_t i = 0; i < c.n; ++i) {
    uint64_t cell[3];
    bool ok = true;
    for (int a = 0; a < 3; ++a) {
      const double p = c.pts[i * 3 + a];
      if (p < -1 || p > 1) ok = false;
      cell[a] = static_cast<uint64_t>(std::min<double>(std::floor((static_cast<float>(p) + 1.f) * static_cast<float>(side / 2)), side - 1));
    }
    if (!ok) { ++r.outside; continue; }
    const int64_t b = c.bid[i];
    for (int d = 0; d <= D; ++d) occ[d].insert({b, naive_key(cell[0] >> (D - d), cell[1] >> (D - d), cell[2] >> (D - d), d)});
    r.leaf_points[{b, naive_key(cell[0], cell[1], cell[2], D)}].push_back(i);
  }
  r.nodes.resize(D + 1);
  r.child.resize(D + 1);
  for (int d = 0; d <= D; ++d) {
    if (d <= F) {
      for (int64_t b = 0; b < c.B; ++b)
        for (uint64_t k = 0; k < (uint64_t(1) << (3 * d)); ++k) r.nodes[d].push_back({b, k});
    } else {
      for (const Node& p : occ[d - 1])
        for (uint64_t ch = 0; ch < 8; ++ch) r.nodes[d].push_back({p.first, (p.second << 3) | ch});
    }
    int32_t rank = 0;
    for (const Node& nd : r.nodes[d]) {
      const bool filled = d < F || occ[d].count(nd);
      r.child[d].push_back(filled ? rank++ : -1);
    }
  }
  return r;
}

int64_t ocnn_key(const Node& n) { return (n.first << 48) | static_cast<int64_t>(n.second); }

void check_tree(const Octree& o, const RefTree& r, const Cloud& c, const char* what) {
  for (int d = 0; d <= o.depth; ++d) {
    const OctreeLevel& L = o.levels[d];
    CHECK(L.keys.size() == r.nodes[d].size()) << what << " depth " << d << ": nnum " << L.keys.size() << " vs " << r.nodes[d].size();
    if (L.keys.size() != r.nodes[d].size()) return;
    bool keys_ok = true, child_ok = true;
    for (size_t i = 0; i < L.keys.size(); ++i) {
      keys_ok &= L.keys[i] == ocnn_key(r.nodes[d][i]);
      child_ok &= L.children[i] == r.child[d][i];
    }
    CHECK(keys_ok) << what << " depth " << d << " keys differ";
    CHECK(child_ok) << what << " depth " << d << " children differ";
    int64_t ne = 0, total = 0;
    for (int b = 0; b < o.batch_size; ++b) { ne += L.batch_nnum_nempty[b]; total += L.batch_nnum[b]; }
    CHECK(ne == L.nnum_nempty && total == static_cast<int64_t>(L.keys.size())) << what << " batch counts";
  }
  // Depth-D signals, in node order.
  const int D = o.depth;
  const double scale = std::ldexp(1.0, D - 1);
  std::vector<double> rp, rn, rf;
  std::vector<float> gp, gn, gf;
  int64_t u = 0;
  for (const auto& [node, ids] : r.leaf_points) {
    double p[3] = {0, 0, 0}, n[3] = {0, 0, 0};
    std::vector<double> f(c.C, 0.0);
    for (int64_t i : ids) {
      for (int a = 0; a < 3; ++a) { p[a] += (c.pts[i * 3 + a] + 1.0) * scale; n[a] += c.nrm[i * 3 + a]; }
      for (int k = 0; k < c.C; ++k) f[k] += c.feat[i * c.C + k];
    }
    const double len = std::max(std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]), 1e-12);
    for (int a = 0; a < 3; ++a) { rp.push_back(p[a] / ids.size()); rn.push_back(n[a] / len); }
    for (int k = 0; k < c.C; ++k) rf.push_back(f[k] / ids.size());
    ++u;
  }
  CHECK(o.points.size() == rp.size() && o.normals.size() == rn.size() && o.features.size() == rf.size()) << what << " signal sizes";
  if (o.points.size() == rp.size()) CHECK_REL(o.points.data(), rp.data(), rp.size(), 1e-6);
  if (o.normals.size() == rn.size()) CHECK_REL(o.normals.data(), rn.data(), rn.size(), 1e-6);
  if (o.features.size() == rf.size()) CHECK_REL(o.features.data(), rf.data(), rf.size(), 1e-6);
}

// Neighbour of node i at depth d by coordinate lookup; -1 if absent.
std::vector<int32_t> ref_neighbors(const Octree& o, int d) {
  const OctreeLevel& L = o.levels[d];
  std::map<int64_t, int32_t> index;
  for (size_t i = 0; i < L.keys.size(); ++i) index[L.keys[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> t(L.keys.size() * 27, -1);
  const int64_t side = int64_t(1) << d;
  for (size_t i = 0; i < L.keys.size(); ++i) {
    uint64_t x, y, z;
    naive_xyz(L.keys[i] & kOctreeKeyMask, d, &x, &y, &z);
    const int64_t b = L.keys[i] >> 48;
    for (int s = 0; s < 27; ++s) {
      const int64_t nx = x + s / 9 - 1, ny = y + (s / 3) % 3 - 1, nz = z + s % 3 - 1;
      if (nx < 0 || ny < 0 || nz < 0 || nx >= side || ny >= side || nz >= side) continue;
      auto it = index.find((b << 48) | static_cast<int64_t>(naive_key(nx, ny, nz, d)));
      if (it != index.end()) t[i * 27 + s] = it->second;
    }
  }
  return t;
}

}  // namespace

TEST(octree_keys_match_bit_interleaving) {
  th::Rng rng(1);
  for (int t = 0; t < 2000; ++t) {
    const uint32_t x = static_cast<uint32_t>(rng.randint(0, 65535)), y = static_cast<uint32_t>(rng.randint(0, 65535)),
                   z = static_cast<uint32_t>(t == 0 ? 65535 : rng.randint(0, 65535));
    const uint64_t k = octree_xyz_to_key(x, y, z);
    CHECK(k == naive_key(x, y, z, 16)) << x << "," << y << "," << z;
    uint32_t a, b, c;
    octree_key_to_xyz(k, &a, &b, &c);
    CHECK(a == x && b == y && c == z);
  }
}

TEST(octree_build_matches_brute_force) {
  // Depth 1 (F 0 and 1), shallow and deeper trees, one sample and a batch
  // with an empty sample; every cloud has duplicates, face points and points
  // outside the box (dropped and counted).
  const int cases[][4] = {{1, 0, 1, 50}, {1, 1, 3, 40}, {3, 2, 1, 300}, {4, 0, 3, 500}, {5, 2, 4, 2000}, {6, 3, 2, 3000},
                          {4, 4, 2, 200}, {8, 2, 1, 20000},
                          // several of the build's 32768-point chunks: runs of equal keys and of siblings cross chunk edges
                          {7, 2, 2, 150000}, {10, 3, 1, 100000}};
  int salt = 10;
  for (const auto& cs : cases) {
    Cloud c = random_cloud(++salt, cs[3], cs[2], true);
    OctreeBuildReport rep;
    Octree o = octree_build(args_of(c, cs[0], cs[1]), &rep);
    RefTree r = ref_build(c, cs[0], cs[1]);
    std::string what = "D" + std::to_string(cs[0]) + " F" + std::to_string(cs[1]) + " B" + std::to_string(cs[2]);
    check_tree(o, r, c, what.c_str());
    CHECK(rep.points_outside == r.outside && rep.points_used + rep.points_outside == c.n) << what << " outside " << rep.points_outside;
    int64_t per = 0;
    for (int64_t v : rep.outside_per_sample) per += v;
    CHECK(per == r.outside);
    // point -> node: the leaf whose cell holds the point.
    bool pn_ok = true;
    int64_t left_out = 0;
    for (int64_t i = 0; i < c.n; ++i) {
      const int32_t u = rep.point_node[i];
      if (u < 0) { ++left_out; continue; }
      const float* q = &o.points[u * 3];  // mean lies in the same cell
      for (int a = 0; a < 3; ++a) {
        const double cell = std::min<double>(std::floor((c.pts[i * 3 + a] + 1.f) * std::ldexp(1.f, cs[0] - 1)), std::ldexp(1.0, cs[0]) - 1);
        pn_ok &= q[a] >= cell - 1e-4 && q[a] <= cell + 1 + 1e-4;
      }
    }
    CHECK(pn_ok) << what << " point_node";
    CHECK(left_out == r.outside) << what << ": " << left_out << " points without a node, " << r.outside << " outside";
    if (c.B >= 3 && cs[0] > cs[1]) CHECK(o.levels[cs[0]].batch_nnum[1] == 0) << "the empty sample has no deep nodes";
  }
}

TEST(octree_build_is_thread_count_independent) {
  Cloud c = random_cloud(77, 100000, 2, false);
  Octree a = octree_build(args_of(c, 9, 2), nullptr);
  auto& pool = ThreadPool::global();
  const int n = pool.num_threads();
  pool.resize(1);
  Octree b = octree_build(args_of(c, 9, 2), nullptr);
  pool.resize(n);
  bool same = a.points == b.points && a.normals == b.normals && a.features == b.features;
  for (int d = 0; d <= 9; ++d) same &= a.levels[d].keys == b.levels[d].keys && a.levels[d].children == b.levels[d].children;
  CHECK(same);
}

TEST(octree_neighbors_match_coordinate_lookup) {
  Cloud c = random_cloud(5, 1500, 3, false);
  Octree o = octree_build(args_of(c, 5, 2), nullptr);
  OctreeView v = octree_view(o);
  for (int d = 0; d <= 5; ++d) {
    const std::vector<int32_t> ref = ref_neighbors(o, d);
    int64_t rows = 0;
    OctreeNeighborArgs a;
    a.depth = d;
    CHECK(octree_neighbors(v, a, &rows) == ref) << "depth " << d;
    // Kernel subsets, stride 2 (first sibling's row) and nempty remapping.
    const auto& ch = o.levels[d].children;
    for (int k = 0; k <= 7; ++k)
      for (int stride : {1, 2})
        for (bool nempty : {false, true}) {
          if (stride == 2 && d == 0) continue;
          a.kernel = static_cast<OctreeKernel>(k);
          a.stride = stride;
          a.nempty = nempty;
          const std::vector<int32_t> got = octree_neighbors(v, a, &rows);
          const int K = octree_kernel_size(a.kernel);
          const int* slots = octree_kernel_slots(a.kernel);
          std::vector<int32_t> want;
          // stride 2: every 8th row (the first sibling's; ocnn neighs[d][::8])
          for (size_t i = 0; i < ch.size(); i += stride == 2 ? 8 : 1) {
            if (stride == 1 && nempty && ch[i] < 0) continue;
            for (int j = 0; j < K; ++j) {
              const int32_t n = ref[i * 27 + slots[j]];
              want.push_back(nempty && n >= 0 ? ch[n] : n);
            }
          }
          CHECK(got == want && rows * K == static_cast<int64_t>(want.size()))
              << "depth " << d << " kernel " << k << " stride " << stride << " nempty " << nempty;
        }
    a = OctreeNeighborArgs{};
  }
}

TEST(octree_merge_equals_batched_build) {
  Cloud c = random_cloud(9, 3000, 3, true);
  Octree batched = octree_build(args_of(c, 6, 2), nullptr);
  std::vector<Octree> singles;
  for (int b = 0; b < 3; ++b) {
    Cloud s;
    s.B = 1;
    for (int64_t i = 0; i < c.n; ++i)
      if (c.bid[i] == b) {
        s.pts.insert(s.pts.end(), &c.pts[i * 3], &c.pts[i * 3 + 3]);
        s.nrm.insert(s.nrm.end(), &c.nrm[i * 3], &c.nrm[i * 3 + 3]);
        s.feat.insert(s.feat.end(), &c.feat[i * c.C], &c.feat[i * c.C + c.C]);
        s.bid.push_back(0);
        ++s.n;
      }
    if (s.n == 0) {  // the empty sample: one point outside the box keeps the cloud non-empty
      s.pts = {2.f, 0.f, 0.f}; s.nrm = {1.f, 0.f, 0.f}; s.feat = {0.f, 0.f}; s.bid = {0}; s.n = 1;
    }
    singles.push_back(octree_build(args_of(s, 6, 2), nullptr));
  }
  std::vector<OctreeView> views;
  for (auto& s : singles) views.push_back(octree_view(s));
  Octree m = octree_merge(views);
  bool same = m.batch_size == 3 && m.points == batched.points && m.normals == batched.normals && m.features == batched.features;
  for (int d = 0; d <= 6; ++d) {
    const auto &x = m.levels[d], &y = batched.levels[d];
    same &= x.keys == y.keys && x.children == y.children && x.nnum_nempty == y.nnum_nempty &&
            x.batch_nnum == y.batch_nnum && x.batch_nnum_nempty == y.batch_nnum_nempty;
  }
  CHECK(same);
  OctreeView bad = octree_view(singles[0]);
  bad.full_depth = 3;
  CHECK_THROWS_CODE(octree_merge({views[0], bad}), kInvalidArgument);
}

TEST(octree_split_and_grow_rebuild_the_tree) {
  Cloud c = random_cloud(21, 800, 2, false);
  Octree o = octree_build(args_of(c, 5, 2), nullptr);
  for (int d = 2; d < 5; ++d) {
    const OctreeLevel& L = o.levels[d];
    std::vector<int32_t> flags(L.keys.size());
    for (size_t i = 0; i < flags.size(); ++i) flags[i] = L.children[i] >= 0 ? 7 : 0;
    OctreeLevelView lv{L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), L.nnum_nempty};
    OctreeLevel s = octree_split(lv, flags.data(), 2);
    CHECK(s.children == L.children && s.nnum_nempty == L.nnum_nempty && s.batch_nnum_nempty == L.batch_nnum_nempty);
    OctreeLevel g = octree_grow(lv, 2);
    CHECK(g.keys == o.levels[d + 1].keys) << "grow depth " << d + 1;
    bool ident = static_cast<int64_t>(g.children.size()) == g.nnum_nempty;
    for (size_t i = 0; i < g.children.size(); ++i) ident &= g.children[i] == static_cast<int32_t>(i);
    CHECK(ident);
  }
  // No flag set: node 0 is forced to split (ocnn).
  const OctreeLevel& L = o.levels[3];
  std::vector<int32_t> zeros(L.keys.size(), 0);
  OctreeLevel s = octree_split({L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), L.nnum_nempty}, zeros.data(), 2);
  CHECK(s.nnum_nempty == 1 && s.children[0] == 0 && std::count(s.children.begin(), s.children.end(), -1) == static_cast<long>(L.keys.size()) - 1);
}

TEST(octree_search_keys_finds_nodes) {
  Cloud c = random_cloud(31, 500, 2, false);
  Octree o = octree_build(args_of(c, 4, 1), nullptr);
  const OctreeLevel& L = o.levels[4];
  std::vector<int64_t> q;
  std::vector<int32_t> want;
  th::Rng rng(32);
  for (int t = 0; t < 400; ++t) {
    const int64_t k = (rng.randint(0, 2) << 48) | rng.randint(0, 4095);
    q.push_back(k);
    auto it = std::lower_bound(L.keys.begin(), L.keys.end(), k);
    want.push_back(it != L.keys.end() && *it == k ? static_cast<int32_t>(it - L.keys.begin()) : -1);
  }
  std::vector<int32_t> got(q.size());
  octree_search_keys({L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), L.nnum_nempty}, q.data(),
                     static_cast<int64_t>(q.size()), got.data());
  CHECK(got == want);
  CHECK(std::count(want.begin(), want.end(), -1) > 0 && std::count(want.begin(), want.end(), -1) < 400) << "both outcomes tested";
}

TEST(octree_input_features_follow_ocnn) {
  Cloud c = random_cloud(41, 600, 2, false);
  Octree o = octree_build(args_of(c, 4, 2), nullptr);
  OctreeView v = octree_view(o);
  int64_t rows = 0;
  int32_t C = 0;
  // Letter order does not matter: ocnn always emits N, D, L, P, F.
  std::vector<float> got = octree_input_features(v, "FPLDN", false, &rows, &C);
  const OctreeLevel& L = o.levels[4];
  CHECK(C == 12 && rows == static_cast<int64_t>(L.keys.size()));
  std::vector<double> want(rows * C, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t u = L.children[i];
    if (u < 0) continue;
    double* w = &want[i * C];
    double loc[3];
    for (int a = 0; a < 3; ++a) {
      const double p = o.points[u * 3 + a];
      loc[a] = p - std::floor(p) - 0.5;
      w[a] = o.normals[u * 3 + a];
      w[4 + a] = loc[a];
      w[7 + a] = p / 8.0 - 1.0;  // 2^(1-D) with D = 4
    }
    w[3] = loc[0] * w[0] + loc[1] * w[1] + loc[2] * w[2];
    w[10] = o.features[u * 2];
    w[11] = o.features[u * 2 + 1];
  }
  CHECK_REL(got.data(), want.data(), want.size(), 1e-6);
  std::vector<float> ne = octree_input_features(v, "ND", true, &rows, &C);
  CHECK(C == 4 && rows == L.nnum_nempty);
  v.normals = nullptr;
  CHECK_THROWS_CODE(octree_input_features(v, "ND", true, &rows, &C), kInvalidArgument);
  CHECK_THROWS_CODE(octree_input_features(v, "nd", true, &rows, &C), kInvalidArgument);
}

namespace {
// PTv3's Hilbert encoding on bit arrays (MSB first per axis), written plainly.
uint64_t ref_hilbert(uint64_t x, uint64_t y, uint64_t z, int bits) {
  std::vector<std::vector<int>> g(3, std::vector<int>(bits));
  const uint64_t xyz[3] = {x, y, z};
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < bits; ++b) g[a][b] = (xyz[a] >> (bits - 1 - b)) & 1;
  for (int b = 0; b < bits; ++b)
    for (int dim = 0; dim < 3; ++dim) {
      const int m = g[dim][b];
      for (int l = b + 1; l < bits; ++l) {
        if (m) {
          g[0][l] ^= 1;
        } else if (g[0][l] != g[dim][l]) {
          g[0][l] ^= 1;
          g[dim][l] ^= 1;
        }
      }
    }
  std::vector<int> flat;
  for (int b = 0; b < bits; ++b)
    for (int a = 0; a < 3; ++a) flat.push_back(g[a][b]);
  uint64_t code = 0;
  int acc = 0;
  for (int bit : flat) {  // Gray -> binary: prefix XOR
    acc ^= bit;
    code = (code << 1) | acc;
  }
  return code;
}
}  // namespace

TEST(octree_serialization_orders) {
  th::Rng rng(51);
  for (int t = 0; t < 3000; ++t) {
    const int bits = static_cast<int>(rng.randint(1, 16));
    const uint64_t m = (uint64_t(1) << bits) - 1;
    const uint64_t x = rng.randint(0, m), y = rng.randint(0, m), z = rng.randint(0, m);
    CHECK(hilbert_code(x, y, z, bits) == ref_hilbert(x, y, z, bits)) << x << "," << y << "," << z << " bits " << bits;
  }
  // A Hilbert curve visits a full grid through face neighbours.
  std::vector<std::pair<uint64_t, std::array<uint64_t, 3>>> cells;
  for (uint64_t x = 0; x < 8; ++x)
    for (uint64_t y = 0; y < 8; ++y)
      for (uint64_t z = 0; z < 8; ++z) cells.push_back({hilbert_code(x, y, z, 3), {x, y, z}});
  std::sort(cells.begin(), cells.end());
  bool adjacent = true;
  for (size_t i = 1; i < cells.size(); ++i) {
    int64_t dist = 0;
    for (int a = 0; a < 3; ++a) dist += std::llabs(static_cast<int64_t>(cells[i].second[a]) - static_cast<int64_t>(cells[i - 1].second[a]));
    adjacent &= dist == 1 && cells[i].first == i;
  }
  CHECK(adjacent);

  Cloud c = random_cloud(52, 3000, 3, false);
  Octree o = octree_build(args_of(c, 6, 2), nullptr);
  const auto& keys = o.levels[6].keys;
  const int64_t n = static_cast<int64_t>(keys.size());
  for (int ord = 0; ord < 4; ++ord) {
    std::vector<int32_t> perm(n), inv(n);
    octree_serialize(keys.data(), n, 6, static_cast<SerialOrder>(ord), perm.data(), inv.data());
    std::vector<std::tuple<int64_t, uint64_t, int32_t>> want;
    for (int64_t i = 0; i < n; ++i) {
      uint64_t x, y, z;
      naive_xyz(keys[i] & kOctreeKeyMask, 6, &x, &y, &z);
      if (ord == 1 || ord == 3) std::swap(x, y);
      const uint64_t code = ord < 2 ? naive_key(x, y, z, 6) : ref_hilbert(x, y, z, 6);
      want.push_back({keys[i] >> 48, code, static_cast<int32_t>(i)});
    }
    std::sort(want.begin(), want.end());
    bool ok = true;
    for (int64_t r = 0; r < n; ++r) ok &= perm[r] == std::get<2>(want[r]) && inv[perm[r]] == r;
    CHECK(ok) << "order " << ord;
    if (ord == 0) {  // the stored order already is batch-major z-order
      bool ident = true;
      for (int64_t r = 0; r < n; ++r) ident &= perm[r] == r;
      CHECK(ident);
    }
  }
}

TEST(octree_window_plan_layout) {
  // 2 samples of 5 and 6 tokens, K = 4, dilation 2, shifted: sequence =
  // [2 fillers | 11 tokens | 3 pads] (16 = 2 blocks of K·D = 8).
  std::vector<int32_t> bid = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
  OctreeWindowArgs a;
  a.batch_ids = bid.data();
  a.n = 11;
  a.batch_size = 2;
  a.window = 4;
  a.dilation = 2;
  a.shift = true;
  OctreeWindowPlan p = octree_window_plan(a);
  CHECK(p.num_windows == 4);
  // Window (block 0, j 0) holds sequence positions 0,2,4,6 -> tokens -,0,2,4.
  const std::vector<int32_t> want = {-1, 0, 2, 4, -1, 1, 3, 5, 6, 8, 10, -1, 7, 9, -1, -1};
  CHECK(p.perm == want);
  const std::vector<int32_t> seg = {2, 0, 0, 0, 2, 0, 0, 1, 1, 1, 1, 2, 1, 1, 2, 2};
  CHECK(p.segments == seg);
  a.window = 0;
  CHECK_THROWS_CODE(octree_window_plan(a), kInvalidArgument);
}

TEST(octree_windowed_attention_matches_dense_reference) {
  // Tokens of 3 samples; windows through the plan + fused attention with
  // kMaskSegment, against a float64 softmax over (same window, same sample).
  const int64_t H = 2, Dh = 8, C = H * Dh;
  std::vector<int32_t> bid;
  for (int b = 0; b < 3; ++b)
    for (int i = 0; i < 23 + 7 * b; ++i) bid.push_back(b);
  const int64_t N = static_cast<int64_t>(bid.size());
  th::Rng rng(61);
  std::vector<float> q(N * C), k(N * C), v(N * C);
  rng.fill(q.data(), q.size());
  rng.fill(k.data(), k.size());
  rng.fill(v.data(), v.size());
  for (int cfg = 0; cfg < 4; ++cfg) {
    OctreeWindowArgs a;
    a.batch_ids = bid.data();
    a.n = N;
    a.batch_size = 3;
    a.window = 8;
    a.dilation = (cfg & 1) ? 3 : 1;
    a.shift = cfg & 2;
    OctreeWindowPlan p = octree_window_plan(a);
    const int64_t L = p.num_windows * a.window;
    std::vector<float> qg(L * C), kg(L * C), vg(L * C), og(L * C), out(N * C, 0.f);
    auto gather = [&](std::vector<float>& src, std::vector<float>& dst) {
      RowGatherArgs g;
      g.x = make_view(src.data(), DType::kF32, {N, C});
      g.index = make_view(p.perm.data(), DType::kI32, {L});
      g.out = make_view(dst.data(), DType::kF32, {L, C});
      octree_rows(g);
    };
    gather(q, qg);
    gather(k, kg);
    gather(v, vg);
    AttentionArgs at;
    at.layout = QkvLayout::kBLHD;
    at.q = make_view(qg.data(), DType::kF32, {p.num_windows, a.window, H, Dh});
    at.k = make_view(kg.data(), DType::kF32, {p.num_windows, a.window, H, Dh});
    at.v = make_view(vg.data(), DType::kF32, {p.num_windows, a.window, H, Dh});
    at.out = make_view(og.data(), DType::kF32, {p.num_windows, a.window, H, Dh});
    at.scale = 1.f / std::sqrt(static_cast<float>(Dh));
    at.mask = kMaskSegment;
    at.q_segments = make_view(p.segments.data(), DType::kI32, {p.num_windows, a.window});
    at.k_segments = at.q_segments;
    attention(at);
    RowGatherArgs s;
    s.x = make_view(og.data(), DType::kF32, {L, C});
    s.index = make_view(p.perm.data(), DType::kI32, {L});
    s.out = make_view(out.data(), DType::kF32, {N, C});
    s.scatter = true;
    octree_rows(s);
    // Reference: window id of each token from the sequence layout.
    const int64_t lead = a.shift ? a.window / 2 : 0, blk = a.window * a.dilation;
    std::vector<int64_t> win(N);
    for (int64_t t = 0; t < N; ++t) {
      const int64_t pos = t + lead;
      win[t] = (pos / blk) * a.dilation + (pos % blk) % a.dilation;
    }
    std::vector<double> ref(N * C);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> w(N, 0.0);
        double mx = -1e300, den = 0;
        for (int64_t j = 0; j < N; ++j) {
          if (win[j] != win[i] || bid[j] != bid[i]) continue;
          double s = 0;
          for (int64_t d = 0; d < Dh; ++d) s += double(q[i * C + h * Dh + d]) * k[j * C + h * Dh + d];
          w[j] = s / std::sqrt(double(Dh));
          mx = std::max(mx, w[j]);
        }
        for (int64_t j = 0; j < N; ++j)
          if (win[j] == win[i] && bid[j] == bid[i]) den += (w[j] = std::exp(w[j] - mx));
          else w[j] = 0;
        for (int64_t d = 0; d < Dh; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < N; ++j) acc += w[j] * v[j * C + h * Dh + d];
          ref[i * C + h * Dh + d] = acc / den;
        }
      }
    CHECK_REL(out.data(), ref.data(), ref.size(), 2e-5);
  }
}

TEST(octree_dwconv_matches_float64) {
  Cloud c = random_cloud(71, 1200, 2, false);
  Octree o = octree_build(args_of(c, 5, 2), nullptr);
  OctreeNeighborArgs na;
  na.depth = 5;
  na.nempty = true;
  int64_t rows = 0;
  std::vector<int32_t> nb = octree_neighbors(octree_view(o), na, &rows);
  const int64_t C = 24, K = 27;
  th::Rng rng(72);
  std::vector<float> x(rows * C), w(K * C), bias(C), out(rows * C);
  rng.fill(x.data(), x.size());
  rng.fill(w.data(), w.size());
  rng.fill(bias.data(), bias.size());
  OctreeDwConvArgs a;
  a.x = make_view(x.data(), DType::kF32, {rows, C});
  a.neighbors = make_view(nb.data(), DType::kI32, {rows, K});
  a.weight = make_view(w.data(), DType::kF32, {K, C});
  a.bias = make_view(bias.data(), DType::kF32, {C});
  a.residual = a.x;
  a.out = make_view(out.data(), DType::kF32, {rows, C});
  octree_dwconv(a);
  std::vector<double> ref(rows * C);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t ch = 0; ch < C; ++ch) {
      double s = double(bias[ch]) + x[i * C + ch];
      for (int64_t k = 0; k < K; ++k)
        if (nb[i * K + k] >= 0) s += double(w[k * C + ch]) * x[nb[i * K + k] * C + ch];
      ref[i * C + ch] = s;
    }
  CHECK_REL(out.data(), ref.data(), ref.size(), 1e-6);
  nb[5] = static_cast<int32_t>(rows);
  CHECK_THROWS_CODE(octree_dwconv(a), kInvalidArgument);
  a.out = a.x;
  CHECK_THROWS_CODE(octree_dwconv(a), kAlias);
}

TEST(octree_validation_codes) {
  Cloud c = random_cloud(81, 50, 1, false);
  OctreeBuildArgs a = args_of(c, 4, 2);
  a.depth = 17;
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a = args_of(c, 4, 5);
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a = args_of(c, 4, 2);
  c.pts[7] = NAN;
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  c.pts[7] = 1.5f;
  a.outside = OctreeOutside::kError;
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a.outside = OctreeOutside::kDrop;
  OctreeBuildReport rep;
  octree_build(a, &rep);
  CHECK(rep.points_outside == 1 && rep.point_node[2] == -1);
  a.normals = make_view(c.nrm.data(), DType::kF32, {c.n - 1, 3});
  CHECK_THROWS_CODE(octree_build(a, nullptr), kShape);
  a = args_of(c, 4, 2);
  a.points.shape[0] = 0;
  a.normals = a.features = TensorView{};
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a = args_of(c, 4, 2);
  a.batch_size = 2;
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);  // needs batch ids
  std::vector<int32_t> bid(c.n, 0);
  bid[3] = 2;
  a.batch_ids = make_view(bid.data(), DType::kI32, {c.n});
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a.batch_ids.dtype = DType::kI64;
  CHECK_THROWS_CODE(octree_build(a, nullptr), kDtype);
  // 8^16 · 32768 = 2^63 full-depth nodes: refused, not wrapped to a negative
  // count that passes the int32 check (then writes out of bounds).
  a = args_of(c, 16, 16);
  a.batch_size = 32768;
  std::vector<int32_t> zeros(c.n, 0);
  a.batch_ids = make_view(zeros.data(), DType::kI32, {c.n});
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);
  a.batch_size = 1;
  a.batch_ids = TensorView{};
  CHECK_THROWS_CODE(octree_build(a, nullptr), kInvalidArgument);  // 8^16 nodes alone exceed int32
}

// OctFormer's RPE bias against a direct loop over (window, head, i, j):
// random tables, random integer coordinates (some differences past the
// bound, some extreme), padding slots from a multi-sample plan, odd K,
// several heads, bounds 1 and 3, a window range inside the plan. The kernel
// adds in the same order in float32, so it must match bit for bit; the
// float64 sum checks the reference itself (1e-6).
TEST(octree_rpe_bias_matches_direct_loop) {
  th::Rng rng(91);
  int64_t pads = 0;
  for (const auto& [K, H, B, dil, samples] : std::vector<std::array<int32_t, 5>>{
           {13, 5, 1, 1, 3}, {7, 3, 3, 2, 2}, {32, 8, 3, 1, 1}, {1, 2, 1, 1, 2}, {9, 1, 3, 3, 4}}) {
    const int64_t N = 100 + rng.randint(0, 200), R = 2 * B + 1;
    std::vector<int32_t> bid(N);
    for (int64_t i = 0, b = 0; i < N; ++i) {
      if (b < samples - 1 && rng.randint(0, N / samples) == 0) ++b;
      bid[i] = static_cast<int32_t>(b);
    }
    OctreeWindowArgs wa;
    wa.batch_ids = bid.data();
    wa.n = N;
    wa.batch_size = samples;
    wa.window = K;
    wa.dilation = dil;
    OctreeWindowPlan plan = octree_window_plan(wa);
    const int64_t W = plan.num_windows;
    pads += std::count(plan.perm.begin(), plan.perm.end(), -1);
    std::vector<float> table(3 * R * H);
    for (float& t : table) t = rng.uniform() * std::pow(10.f, rng.uniform(-3.f, 3.f));
    std::vector<int32_t> xyz(3 * N);
    for (int32_t& c : xyz) c = static_cast<int32_t>(rng.randint(0, 11));
    xyz[0] = INT32_MAX;
    xyz[4] = INT32_MIN;
    for (const auto& [w0, n] : std::vector<std::pair<int64_t, int64_t>>{{0, W}, {1, W - 2}, {W - 1, 1}}) {
      if (n <= 0) continue;
      std::vector<float> out(n * H * K * K, NAN);
      OctreeRpeBiasArgs a;
      a.table = make_view(table.data(), DType::kF32, {3 * R, H});
      a.xyz = make_view(xyz.data(), DType::kI32, {N, 3});
      a.perm = make_view(plan.perm.data(), DType::kI32, {W * K});
      a.window = K;
      a.w0 = w0;
      a.n = n;
      a.out = make_view(out.data(), DType::kF32, {n, H, K, K});
      octree_rpe_bias(a);
      std::vector<float> ref(out.size());
      std::vector<double> ref64(out.size());
      int64_t bad = 0;
      for (int64_t w = 0; w < n; ++w)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < K; ++i)
            for (int64_t j = 0; j < K; ++j) {
              const int64_t at = ((w * H + h) * K + i) * K + j;
              const int32_t ti = plan.perm[(w0 + w) * K + i], tj = plan.perm[(w0 + w) * K + j];
              float v = 0.f;
              double v64 = 0;
              if (ti >= 0 && tj >= 0) {
                float s[3];
                for (int ax = 0; ax < 3; ++ax) {
                  const int64_t d = std::clamp<int64_t>(int64_t(xyz[3 * ti + ax]) - xyz[3 * tj + ax], -B, B);
                  s[ax] = table[(ax * R + d + B) * H + h];
                  v64 += s[ax];
                }
                volatile float xy = s[0] + s[1];  // round the first sum to float32
                v = xy + s[2];
              }
              ref[at] = v;
              ref64[at] = v64;
              if (std::memcmp(&v, &out[at], sizeof(float)) != 0) ++bad;
            }
      CHECK(bad == 0) << bad << " of " << out.size() << " values differ (K " << K << ", H " << H << ", B " << B << ")";
      CHECK_REL(out.data(), ref64.data(), ref64.size(), 1e-6);
    }
  }
  CHECK(pads > 0);  // padding slots were exercised
}

TEST(octree_rpe_bias_validation_codes) {
  const int64_t N = 20, K = 4, H = 2, W = 5;
  std::vector<float> table(9 * H, 0.5f), out(2 * H * K * K);
  std::vector<int32_t> xyz(3 * N, 1), perm(W * K);
  for (int64_t s = 0; s < W * K; ++s) perm[s] = s < N ? static_cast<int32_t>(s) : -1;
  OctreeRpeBiasArgs a;
  auto reset = [&] {
    a.table = make_view(table.data(), DType::kF32, {9, H});
    a.xyz = make_view(xyz.data(), DType::kI32, {N, 3});
    a.perm = make_view(perm.data(), DType::kI32, {W * K});
    a.out = make_view(out.data(), DType::kF32, {2, H, K, K});
    a.window = K;
    a.w0 = 3;
    a.n = 2;
  };
  reset();
  octree_rpe_bias(a);
  CHECK(out[0] == 1.5f);
  a.table.dtype = DType::kI32;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kDtype);
  reset();
  a.xyz.dtype = DType::kF32;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kDtype);
  reset();
  a.table = make_view(table.data(), DType::kF32, {6, H});  // 2B+1 = 2
  CHECK_THROWS_CODE(octree_rpe_bias(a), kShape);
  reset();
  a.xyz = make_view(xyz.data(), DType::kI32, {30, 2});
  CHECK_THROWS_CODE(octree_rpe_bias(a), kShape);
  reset();
  a.perm = make_view(perm.data(), DType::kI32, {W * K - 1});
  CHECK_THROWS_CODE(octree_rpe_bias(a), kShape);
  reset();
  a.out = make_view(out.data(), DType::kF32, {2, H, K, K - 1});
  CHECK_THROWS_CODE(octree_rpe_bias(a), kShape);
  reset();
  a.w0 = 4;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kInvalidArgument);
  reset();
  a.window = 0;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kInvalidArgument);
  reset();
  a.n = int64_t(1) << 40;  // past the plan's windows
  a.w0 = 0;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kInvalidArgument);
  reset();
  perm[13] = static_cast<int32_t>(N);
  CHECK_THROWS_CODE(octree_rpe_bias(a), kInvalidArgument);
  perm[13] = -2;
  CHECK_THROWS_CODE(octree_rpe_bias(a), kInvalidArgument);
  perm[13] = 13;
  a.n = 1;
  a.window = 1;
  a.perm = make_view(perm.data(), DType::kI32, {W * K});
  a.out = make_view(table.data(), DType::kF32, {1, H, 1, 1});
  CHECK_THROWS_CODE(octree_rpe_bias(a), kAlias);
}
