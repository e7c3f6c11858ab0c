// Sparse marching cubes on an octree: the native twin of lib/octree/mesh.ts
// (same SDF, same generated case table, same corner and vertex order, so the
// two give the same mesh). Method, in short (mesh.ts has the full notes):
//   f(c) = Σ w_i dot(c - p_i, n_i) / Σ w_i, w_i = (1 - |c - p_i|²/r²)², over
//   the depth-D leaves whose mean point p_i lies within r cells of lattice
//   corner c; only such corners exist (open-addressing hash), cells are those
//   whose 8 corners exist; the table comes from one rule per face (ambiguous
//   faces separate the negative corners), so shared faces cut alike and the
//   mesh is watertight; vertices are keyed by lattice edge.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/octree.h"
#include "tessera/status.h"

namespace tessera {
namespace {

struct McTable {
  int edge_from[12], edge_axis[12], edge_to[12];
  std::vector<std::vector<int>> loops[256];
};

McTable build_table() {
  McTable t{};
  int ne = 0;
  for (int a = 0; a < 3; ++a)
    for (int c = 0; c < 8; ++c)
      if (!(c & (1 << a))) { t.edge_from[ne] = c; t.edge_axis[ne] = a; t.edge_to[ne] = c | (1 << a); ++ne; }
  auto edge_of = [&](int c0, int c1) {
    for (int e = 0; e < 12; ++e)
      if ((t.edge_from[e] == c0 && t.edge_to[e] == c1) || (t.edge_from[e] == c1 && t.edge_to[e] == c0)) return e;
    throw Error(Code::kInternal, "marching cubes table: corners share no edge");
  };
  auto corner = [](int c, double* p) { p[0] = c & 1; p[1] = (c >> 1) & 1; p[2] = (c >> 2) & 1; };
  auto mid = [&](int e, double* m) {
    double p[3], q[3];
    corner(t.edge_from[e], p); corner(t.edge_to[e], q);
    for (int k = 0; k < 3; ++k) m[k] = (p[k] + q[k]) / 2;
  };
  struct Face { int c[4]; double n[3]; };
  std::vector<Face> faces;
  for (int a = 0; a < 3; ++a) {
    const int u = (a + 1) % 3, v = (a + 2) % 3;
    for (int s = 0; s < 2; ++s) {
      const int base = s << a;
      Face f{{base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)}, {0, 0, 0}};
      f.n[a] = s ? 1 : -1;
      faces.push_back(f);
    }
  }
  for (int cs = 0; cs < 256; ++cs) {
    auto neg = [&](int c) { return ((cs >> c) & 1) == 1; };
    int next[12];
    std::fill(next, next + 12, -1);
    std::vector<int> order;  // segment starts in insertion order (as mesh.ts's Map)
    auto add = [&](int e0, int e1, int inside, const double* F) {
      double p[3], q[3], n[3];
      mid(e0, p); mid(e1, q); corner(inside, n);
      const double d[3] = {q[0] - p[0], q[1] - p[1], q[2] - p[2]};
      const double x[3] = {d[1] * F[2] - d[2] * F[1], d[2] * F[0] - d[0] * F[2], d[0] * F[1] - d[1] * F[0]};
      const double side = x[0] * (n[0] - p[0]) + x[1] * (n[1] - p[1]) + x[2] * (n[2] - p[2]);
      const int from = side > 0 ? e0 : e1, to = side > 0 ? e1 : e0;
      if (next[from] >= 0) throw Error(Code::kInternal, "marching cubes table: an edge starts two segments");
      next[from] = to;
      order.push_back(from);
    };
    for (const Face& f : faces) {
      int cross[4], nc = 0;
      for (int i = 0; i < 4; ++i) if (neg(f.c[i]) != neg(f.c[(i + 1) % 4])) cross[nc++] = i;
      if (nc == 2) {
        int inside = -1;
        for (int i = 0; i < 4 && inside < 0; ++i) if (neg(f.c[i])) inside = f.c[i];
        add(edge_of(f.c[cross[0]], f.c[(cross[0] + 1) % 4]), edge_of(f.c[cross[1]], f.c[(cross[1] + 1) % 4]), inside, f.n);
      } else if (nc == 4) {
        for (int i = 0; i < 4; ++i)
          if (neg(f.c[i])) add(edge_of(f.c[(i + 3) % 4], f.c[i]), edge_of(f.c[i], f.c[(i + 1) % 4]), f.c[i], f.n);
      }
    }
    bool seen[12] = {};
    for (int start : order) {
      if (seen[start]) continue;
      std::vector<int> loop;
      for (int e = start; !seen[e]; e = next[e]) {
        if (next[e] < 0) throw Error(Code::kInternal, "marching cubes table: an open loop");
        seen[e] = true;
        loop.push_back(e);
      }
      if (loop.size() < 3) throw Error(Code::kInternal, "marching cubes table: a loop of fewer than 3 edges");
      t.loops[cs].push_back(std::move(loop));
    }
  }
  return t;
}

const McTable& table() {
  static const McTable t = build_table();
  return t;
}

// Lattice corners with their accumulated weights, ids in insertion order.
// Open addressing with a locality-keeping hash: the 4x4x4 block of a corner
// picks a run of 64 slots and the position inside the block the slot, so the
// corners one leaf touches share a few cache lines.
class CornerTable {
 public:
  CornerTable(int64_t side, int64_t expected) : side_(side) {
    size_t cap = 1024;
    while (cap < static_cast<size_t>(expected) * 2) cap *= 2;
    table_.assign(cap, Slot{-1, 0});
    xs.reserve(expected); ys.reserve(expected); zs.reserve(expected);
    sum_w.reserve(expected); sum_wd.reserve(expected);
  }
  int32_t find(int32_t x, int32_t y, int32_t z) const {
    const int64_t key = pack(x, y, z);
    const size_t mask = table_.size() - 1;
    for (size_t h = hash(x, y, z) & mask;; h = (h + 1) & mask) {
      if (table_[h].key == key) return table_[h].id;
      if (table_[h].key == -1) return -1;
    }
  }
  int32_t insert(int32_t x, int32_t y, int32_t z) {
    const int64_t key = pack(x, y, z);
    const size_t mask = table_.size() - 1;
    size_t h = hash(x, y, z) & mask;
    for (;; h = (h + 1) & mask) {
      if (table_[h].key == key) return table_[h].id;
      if (table_[h].key == -1) break;
    }
    const int32_t id = static_cast<int32_t>(xs.size());
    table_[h] = Slot{key, id};
    xs.push_back(x); ys.push_back(y); zs.push_back(z);
    sum_w.push_back(0); sum_wd.push_back(0);
    if (xs.size() * 2 > table_.size()) rehash();
    return id;
  }
  std::vector<int32_t> xs, ys, zs;
  std::vector<double> sum_w, sum_wd;

 private:
  struct Slot { int64_t key; int32_t id; };
  int64_t pack(int64_t x, int64_t y, int64_t z) const { return x + side_ * (y + side_ * z); }
  static size_t hash(int32_t x, int32_t y, int32_t z) {
    const uint32_t b = (static_cast<uint32_t>(x >> 2) * 73856093u) ^ (static_cast<uint32_t>(y >> 2) * 19349663u) ^
                       (static_cast<uint32_t>(z >> 2) * 83492791u);
    return (static_cast<size_t>(b) << 6) | static_cast<size_t>((x & 3) | ((y & 3) << 2) | ((z & 3) << 4));
  }
  void rehash() {
    const size_t cap = table_.size() * 2, mask = cap - 1;
    table_.assign(cap, Slot{-1, 0});
    for (size_t id = 0; id < xs.size(); ++id) {
      size_t h = hash(xs[id], ys[id], zs[id]) & mask;
      while (table_[h].key != -1) h = (h + 1) & mask;
      table_[h] = Slot{pack(xs[id], ys[id], zs[id]), static_cast<int32_t>(id)};
    }
  }
  int64_t side_;
  std::vector<Slot> table_;
};

}  // namespace

int64_t mesh_open_edges(const uint32_t* indices, int64_t n, int64_t vertices) {
  std::vector<int64_t> start(vertices + 1, 0);
  for (int64_t t = 0; t < n; ++t) ++start[indices[t] + 1];
  for (int64_t v = 0; v < vertices; ++v) start[v + 1] += start[v];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  std::vector<uint32_t> to(n);
  for (int64_t t = 0; t + 2 < n; t += 3)
    for (int k = 0; k < 3; ++k) to[fill[indices[t + k]]++] = indices[t + (k + 1) % 3];
  int64_t open = 0;
  for (int64_t a = 0; a < vertices; ++a)
    for (int64_t i = start[a]; i < start[a + 1]; ++i) {
      const uint32_t b = to[i];
      bool back = false;
      for (int64_t j = start[b]; j < start[b + 1] && !back; ++j) back = to[j] == static_cast<uint32_t>(a);
      if (!back) ++open;
    }
  return open;
}

OctreeMeshResult octree_marching_cubes(const OctreeView& o, const OctreeMeshArgs& a) {
  TESSERA_CHECK(o.depth >= 1 && o.depth <= kOctreeMaxDepth && static_cast<int>(o.levels.size()) == o.depth + 1, kInvalidArgument,
                "marching cubes: the octree's depth must be 1..16 with depth + 1 levels");
  TESSERA_CHECK(a.sample >= 0 && a.sample < o.batch_size, kInvalidArgument,
                "sample must be 0.." + std::to_string(o.batch_size - 1) + ", got " + std::to_string(a.sample));
  TESSERA_CHECK(a.radius >= 1 && a.radius <= 4, kInvalidArgument, "radius must be 1..4 cells");
  TESSERA_CHECK(o.points && o.normals, kInvalidArgument,
                "meshing needs the depth-D points and normals of the octree (build it from a cloud with normals)");
  const McTable& T = table();
  const int D = o.depth;
  const int32_t S = 1 << D;
  const OctreeLevelView& L = o.levels[D];
  OctreeMeshResult res;

  // Leaves of the sample with an orientation.
  std::vector<int32_t> leaves;
  for (int64_t i = 0; i < L.nnum; ++i) {
    const int32_t r = L.children[i];
    if (r < 0 || (o.batch_size > 1 && (L.keys[i] >> kOctreeBatchShift) != a.sample)) continue;
    const float* n = o.normals + 3 * int64_t(r);
    const double nn = double(n[0]) * n[0] + double(n[1]) * n[1] + double(n[2]) * n[2];
    if (!(nn > 0)) continue;
    leaves.push_back(r);
  }
  res.leaves = static_cast<int64_t>(leaves.size());
  TESSERA_CHECK(!leaves.empty(), kInvalidArgument, "sample " + std::to_string(a.sample) + " has no leaves with normals to mesh");

  // 1. Scatter the leaves' planes into the corners within r.
  CornerTable ct(int64_t(S) + 1, res.leaves * 6);
  const double r = a.radius, r2 = r * r;
  for (int32_t li : leaves) {
    const double px = o.points[3 * int64_t(li)], py = o.points[3 * int64_t(li) + 1], pz = o.points[3 * int64_t(li) + 2];
    const double nx = o.normals[3 * int64_t(li)], ny = o.normals[3 * int64_t(li) + 1], nz = o.normals[3 * int64_t(li) + 2];
    const int32_t x0 = static_cast<int32_t>(std::max(0.0, std::ceil(px - r))), x1 = static_cast<int32_t>(std::min(double(S), std::floor(px + r)));
    const int32_t y0 = static_cast<int32_t>(std::max(0.0, std::ceil(py - r))), y1 = static_cast<int32_t>(std::min(double(S), std::floor(py + r)));
    const int32_t z0 = static_cast<int32_t>(std::max(0.0, std::ceil(pz - r))), z1 = static_cast<int32_t>(std::min(double(S), std::floor(pz + r)));
    for (int32_t z = z0; z <= z1; ++z) {
      const double dz = z - pz;
      for (int32_t y = y0; y <= y1; ++y) {
        const double dy = y - py, dyz = dy * dy + dz * dz;
        if (dyz >= r2) continue;
        for (int32_t x = x0; x <= x1; ++x) {
          const double dx = x - px, d2 = dx * dx + dyz;
          if (d2 >= r2) continue;
          const double t = 1 - d2 / r2, w = t * t;
          const int32_t id = ct.insert(x, y, z);
          ct.sum_w[id] += w;
          ct.sum_wd[id] += w * (dx * nx + dy * ny + dz * nz);
        }
      }
    }
  }
  const int64_t nc = static_cast<int64_t>(ct.xs.size());
  res.corners = nc;
  std::vector<double> f(nc);
  for (int64_t i = 0; i < nc; ++i) f[i] = ct.sum_wd[i] / ct.sum_w[i];

  // 2. March the cells whose 8 corners exist.
  std::vector<int32_t> edge_vertex(nc * 3, -1);
  const double scale = 2.0 / S, eps = 1e-3;
  auto vertex_on = [&](int32_t c0, int axis) -> uint32_t {
    int32_t& v = edge_vertex[3 * int64_t(c0) + axis];
    if (v >= 0) return static_cast<uint32_t>(v);
    const int32_t x = ct.xs[c0], y = ct.ys[c0], z = ct.zs[c0];
    const int32_t c1 = ct.find(x + (axis == 0), y + (axis == 1), z + (axis == 2));
    const double f0 = f[c0], f1 = f[c1];
    const double t = std::min(1 - eps, std::max(eps, f0 / (f0 - f1)));
    v = static_cast<int32_t>(res.positions.size() / 3);
    res.positions.push_back(static_cast<float>((x + (axis == 0 ? t : 0)) * scale - 1));
    res.positions.push_back(static_cast<float>((y + (axis == 1 ? t : 0)) * scale - 1));
    res.positions.push_back(static_cast<float>((z + (axis == 2 ? t : 0)) * scale - 1));
    return static_cast<uint32_t>(v);
  };
  int32_t cid[8];
  int64_t ev[12];
  for (int64_t c = 0; c < nc; ++c) {
    const int32_t x = ct.xs[c], y = ct.ys[c], z = ct.zs[c];
    if (x >= S || y >= S || z >= S) continue;
    bool ok = true;
    cid[0] = static_cast<int32_t>(c);
    for (int k = 1; k < 8 && ok; ++k) {
      const int32_t id = ct.find(x + (k & 1), y + ((k >> 1) & 1), z + ((k >> 2) & 1));
      if (id < 0) ok = false; else cid[k] = id;
    }
    if (!ok) continue;
    ++res.cells;
    int cs = 0;
    for (int k = 0; k < 8; ++k) if (f[cid[k]] < 0) cs |= 1 << k;
    if (cs == 0 || cs == 255) continue;
    ++res.surface_cells;
    std::fill(ev, ev + 12, -1);
    for (const std::vector<int>& loop : T.loops[cs]) {
      for (int e : loop) if (ev[e] < 0) ev[e] = vertex_on(cid[T.edge_from[e]], T.edge_axis[e]);
      const uint32_t v0 = static_cast<uint32_t>(ev[loop[0]]);
      for (size_t k = 1; k + 1 < loop.size(); ++k) {
        res.indices.push_back(v0);
        res.indices.push_back(static_cast<uint32_t>(ev[loop[k]]));
        res.indices.push_back(static_cast<uint32_t>(ev[loop[k + 1]]));
      }
    }
  }

  // 3. Area-weighted vertex normals; open-edge count.
  const int64_t V = static_cast<int64_t>(res.positions.size() / 3);
  std::vector<double> acc(3 * V, 0.0);
  const float* P = res.positions.data();
  for (size_t t = 0; t < res.indices.size(); t += 3) {
    const int64_t ia = 3 * int64_t(res.indices[t]), ib = 3 * int64_t(res.indices[t + 1]), ic = 3 * int64_t(res.indices[t + 2]);
    const double ux = double(P[ib]) - P[ia], uy = double(P[ib + 1]) - P[ia + 1], uz = double(P[ib + 2]) - P[ia + 2];
    const double vx = double(P[ic]) - P[ia], vy = double(P[ic + 1]) - P[ia + 1], vz = double(P[ic + 2]) - P[ia + 2];
    const double cx = uy * vz - uz * vy, cy = uz * vx - ux * vz, cz = ux * vy - uy * vx;
    for (int64_t i : {ia, ib, ic}) { acc[i] += cx; acc[i + 1] += cy; acc[i + 2] += cz; }
  }
  res.normals.assign(3 * V, 0.f);
  for (int64_t i = 0; i < 3 * V; i += 3) {
    const double l = std::sqrt(acc[i] * acc[i] + acc[i + 1] * acc[i + 1] + acc[i + 2] * acc[i + 2]);
    if (l > 0) for (int k = 0; k < 3; ++k) res.normals[i + k] = static_cast<float>(acc[i + k] / l);
  }
  res.boundary_edges = mesh_open_edges(res.indices.data(), static_cast<int64_t>(res.indices.size()), V);
  return res;
}

}  // namespace tessera
