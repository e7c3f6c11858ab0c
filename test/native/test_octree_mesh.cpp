// Sparse marching cubes (tessera/octree.h octree_marching_cubes): a sphere
// and a box from oriented point clouds must give closed (no open edge),
// edge-manifold, genus-0 (V - E + F = 2) surfaces with no two vertices at the
// same position, outward normals, the right radius/volume, and far fewer SDF
// corners than the dense lattice; bad input throws kInvalidArgument.
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "tessera/octree.h"

using namespace tessera;

namespace {

struct Cloud { std::vector<float> pts, nrm; int64_t n = 0; };

Cloud sphere(int64_t n, double r) {
  Cloud c;
  c.n = n;
  const double g = M_PI * (3 - std::sqrt(5.0));
  for (int64_t i = 0; i < n; ++i) {
    const double y = 1 - 2 * (i + 0.5) / n, s = std::sqrt(1 - y * y), t = g * i;
    const double nv[3] = {std::cos(t) * s, y, std::sin(t) * s};
    for (int k = 0; k < 3; ++k) { c.nrm.push_back(float(nv[k])); c.pts.push_back(float(nv[k] * r)); }
  }
  return c;
}

Cloud box(int m, double h) {
  Cloud c;
  for (int a = 0; a < 3; ++a)
    for (int s = -1; s <= 1; s += 2)
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < m; ++j) {
          double p[3] = {0, 0, 0}, n[3] = {0, 0, 0};
          p[a] = s * h; n[a] = s;
          p[(a + 1) % 3] = ((i + 0.5) / m * 2 - 1) * h;
          p[(a + 2) % 3] = ((j + 0.5) / m * 2 - 1) * h;
          for (int k = 0; k < 3; ++k) { c.pts.push_back(float(p[k])); c.nrm.push_back(float(n[k])); }
          ++c.n;
        }
  return c;
}

Octree build(Cloud& c, int depth, bool normals = true) {
  OctreeBuildArgs a;
  a.points = make_view(c.pts.data(), DType::kF32, {c.n, 3});
  if (normals) a.normals = make_view(c.nrm.data(), DType::kF32, {c.n, 3});
  a.depth = depth;
  a.full_depth = 2;
  OctreeBuildReport rep;
  return octree_build(a, &rep);
}

struct Topo { int64_t euler = 0, non_manifold = 0, duplicates = 0; double volume = 0; };
Topo topology(const OctreeMeshResult& m) {
  Topo t;
  const int64_t V = int64_t(m.positions.size() / 3), F = int64_t(m.indices.size() / 3);
  std::map<std::pair<uint32_t, uint32_t>, int> edges;
  for (size_t i = 0; i < m.indices.size(); i += 3)
    for (int k = 0; k < 3; ++k) {
      uint32_t a = m.indices[i + k], b = m.indices[i + (k + 1) % 3];
      ++edges[{std::min(a, b), std::max(a, b)}];
    }
  for (auto& [e, n] : edges) if (n != 2) ++t.non_manifold;
  t.euler = V - int64_t(edges.size()) + F;
  std::set<std::tuple<float, float, float>> pos;
  for (int64_t v = 0; v < V; ++v) pos.insert({m.positions[3 * v], m.positions[3 * v + 1], m.positions[3 * v + 2]});
  t.duplicates = V - int64_t(pos.size());
  const float* p = m.positions.data();
  for (size_t i = 0; i < m.indices.size(); i += 3) {
    const float *a = p + 3 * m.indices[i], *b = p + 3 * m.indices[i + 1], *c = p + 3 * m.indices[i + 2];
    t.volume += (double(a[0]) * (double(b[1]) * c[2] - double(b[2]) * c[1]) - double(a[1]) * (double(b[0]) * c[2] - double(b[2]) * c[0]) +
                 double(a[2]) * (double(b[0]) * c[1] - double(b[1]) * c[0])) / 6;
  }
  return t;
}

}  // namespace

TEST(octree_mesh_sphere_closed_outward) {
  Cloud c = sphere(40000, 0.6);
  Octree o = build(c, 6);
  OctreeMeshResult m = octree_marching_cubes(octree_view(o), {});
  CHECK(m.boundary_edges == 0) << m.boundary_edges;
  Topo t = topology(m);
  CHECK(t.euler == 2) << t.euler;
  CHECK(t.non_manifold == 0) << t.non_manifold;
  CHECK(t.duplicates == 0) << t.duplicates;
  const double want = 4.0 / 3 * M_PI * 0.6 * 0.6 * 0.6;
  CHECK(std::fabs(t.volume - want) / want < 0.02) << t.volume << " vs " << want;
  int64_t inward = 0;
  double max_err = 0;
  for (size_t v = 0; v < m.positions.size(); v += 3) {
    const float* p = &m.positions[v];
    const float* n = &m.normals[v];
    if (p[0] * n[0] + p[1] * n[1] + p[2] * n[2] <= 0) ++inward;
    max_err = std::max(max_err, std::fabs(std::sqrt(double(p[0]) * p[0] + double(p[1]) * p[1] + double(p[2]) * p[2]) - 0.6));
  }
  CHECK(inward == 0) << inward;
  CHECK(max_err < 1.0 / 64) << max_err;
  CHECK(m.corners < 65 * 65 * 65 / 3) << m.corners;
  CHECK(m.surface_cells > 0 && m.surface_cells <= m.cells);
}

TEST(octree_mesh_box_closed) {
  Cloud c = box(77, 0.5);
  Octree o = build(c, 5);
  OctreeMeshResult m = octree_marching_cubes(octree_view(o), {});
  CHECK(m.boundary_edges == 0) << m.boundary_edges;
  Topo t = topology(m);
  CHECK(t.euler == 2) << t.euler;
  CHECK(t.non_manifold == 0) << t.non_manifold;
  CHECK(t.volume > 0.8 && t.volume < 1.1) << t.volume;
}

TEST(octree_mesh_open_edges_and_bad_input) {
  const uint32_t tri[3] = {0, 1, 2};
  CHECK(mesh_open_edges(tri, 3, 3) == 3);
  const uint32_t tet[12] = {0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3};
  CHECK(mesh_open_edges(tet, 12, 4) == 0);
  Cloud c = sphere(500, 0.5);
  Octree bare = build(c, 4, false);
  CHECK_THROWS_CODE(octree_marching_cubes(octree_view(bare), {}), kInvalidArgument);
  Octree o = build(c, 4);
  OctreeMeshArgs a;
  a.sample = 1;
  CHECK_THROWS_CODE(octree_marching_cubes(octree_view(o), a), kInvalidArgument);
  a.sample = 0;
  a.radius = 0.5;
  CHECK_THROWS_CODE(octree_marching_cubes(octree_view(o), a), kInvalidArgument);
}
