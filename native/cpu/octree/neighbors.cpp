// 27-slot neighbour tables (ocnn Octree.construct_neigh / get_neigh).
// Dense depths (d <= F) decode each node and add the offset. Deeper depths
// derive each child's row from its parent's row through two fixed 8x27 tables:
// per axis n = c + 2 + o (c the child bit, o in {-1,0,1}), the neighbour's
// parent is parent slot n/2 of the row and its child bit is n%2.
#include <array>

#include "cpu/octree/octree_cpu.h"
#include "tessera/threadpool.h"

namespace tessera {
namespace {

constexpr int kSlots222[] = {13, 14, 16, 17, 22, 23, 25, 26};
constexpr int kSlots311[] = {4, 13, 22};
constexpr int kSlots131[] = {10, 13, 16};
constexpr int kSlots113[] = {12, 13, 14};
constexpr int kSlots331[] = {1, 4, 7, 10, 13, 16, 19, 22, 25};
constexpr int kSlots313[] = {3, 4, 5, 12, 13, 14, 21, 22, 23};
constexpr int kSlots133[] = {9, 10, 11, 12, 13, 14, 15, 16, 17};
constexpr std::array<int, 27> kSlots333 = [] {
  std::array<int, 27> s{};
  for (int i = 0; i < 27; ++i) s[i] = i;
  return s;
}();

}  // namespace

int octree_kernel_size(OctreeKernel k) {
  switch (k) {
    case OctreeKernel::k333: return 27;
    case OctreeKernel::k222: return 8;
    case OctreeKernel::k311: case OctreeKernel::k131: case OctreeKernel::k113: return 3;
    case OctreeKernel::k331: case OctreeKernel::k313: case OctreeKernel::k133: return 9;
  }
  return 0;
}

const int* octree_kernel_slots(OctreeKernel k) {
  switch (k) {
    case OctreeKernel::k333: return kSlots333.data();
    case OctreeKernel::k222: return kSlots222;
    case OctreeKernel::k311: return kSlots311;
    case OctreeKernel::k131: return kSlots131;
    case OctreeKernel::k113: return kSlots113;
    case OctreeKernel::k331: return kSlots331;
    case OctreeKernel::k313: return kSlots313;
    case OctreeKernel::k133: return kSlots133;
  }
  return nullptr;
}

}  // namespace tessera

namespace tessera::cpu::octree {
namespace {

struct ChildLuts {
  int8_t parent[8][27], child[8][27];
};
const ChildLuts& luts() {
  static const ChildLuts t = [] {
    ChildLuts l{};
    for (int c = 0; c < 8; ++c)
      for (int s = 0; s < 27; ++s) {
        const int cb[3] = {(c >> 2) & 1, (c >> 1) & 1, c & 1};
        const int off[3] = {s / 9 - 1, (s / 3) % 3 - 1, s % 3 - 1};
        int ps = 0, cs = 0;
        for (int a = 0; a < 3; ++a) {
          const int n = cb[a] + 2 + off[a];  // in [1, 4]
          ps = ps * 3 + n / 2;
          cs = cs * 2 + n % 2;
        }
        l.parent[c][s] = static_cast<int8_t>(ps);
        l.child[c][s] = static_cast<int8_t>(cs);
      }
    return l;
  }();
  return t;
}

// Full 27-slot table of a dense depth (all samples).
std::vector<int32_t> dense_table(int d, int32_t batch_size) {
  const int64_t per = int64_t(1) << (3 * d), n = per * batch_size;
  const int64_t side = int64_t(1) << d;
  std::vector<int32_t> t(n * 27);
  ThreadPool::global().parallel_for(per, 4096, [&](int64_t k0, int64_t k1, int) {
    for (int64_t k = k0; k < k1; ++k) {
      uint32_t xyz[3];
      octree_key_to_xyz(static_cast<uint64_t>(k), &xyz[0], &xyz[1], &xyz[2]);
      for (int s = 0; s < 27; ++s) {
        const int64_t x = xyz[0] + s / 9 - 1, y = xyz[1] + (s / 3) % 3 - 1, z = xyz[2] + s % 3 - 1;
        const bool in = x >= 0 && y >= 0 && z >= 0 && x < side && y < side && z < side;
        const int64_t nk = in ? static_cast<int64_t>(xyz_key(x, y, z)) : -1;
        for (int64_t b = 0; b < batch_size; ++b)
          t[(b * per + k) * 27 + s] = in ? static_cast<int32_t>(b * per + nk) : -1;
      }
    }
  });
  return t;
}

// Table of depth d from the table of depth d-1 (ocnn's construct_neigh, d > F).
std::vector<int32_t> child_table(const std::vector<int32_t>& prev, const OctreeLevelView& parent,
                                 int64_t nnum) {
  std::vector<int32_t> nempty;  // index of the j-th non-empty parent
  nempty.reserve(parent.nnum_nempty);
  for (int64_t i = 0; i < parent.nnum; ++i)
    if (parent.children[i] >= 0) nempty.push_back(static_cast<int32_t>(i));
  const ChildLuts& lut = luts();
  std::vector<int32_t> t(nnum * 27);
  ThreadPool::global().parallel_for(static_cast<int64_t>(nempty.size()), 2048, [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      const int32_t* row = &prev[static_cast<int64_t>(nempty[j]) * 27];
      for (int c = 0; c < 8; ++c) {
        int32_t* out = &t[(j * 8 + c) * 27];
        for (int s = 0; s < 27; ++s) {
          const int32_t pn = row[lut.parent[c][s]];
          const int32_t ch = pn >= 0 ? parent.children[pn] : -1;
          out[s] = ch >= 0 ? ch * 8 + lut.child[c][s] : -1;
        }
      }
    }
  });
  return t;
}

}  // namespace

std::vector<int32_t> neighbors(const OctreeView& o, const OctreeNeighborArgs& a, int64_t* rows) {
  const int d = a.depth, F = o.full_depth;
  std::vector<int32_t> full = dense_table(std::min(d, F), o.batch_size);
  for (int e = F + 1; e <= d; ++e) full = child_table(full, o.levels[e - 1], o.levels[e].nnum);
  const OctreeLevelView& L = o.levels[d];
  const int K = octree_kernel_size(a.kernel);
  const int* slots = octree_kernel_slots(a.kernel);
  // Stride 2: the row of every first sibling (every 8th node, ocnn's
  // neighs[depth][::8]), kept whether or not that node is empty.
  std::vector<int64_t> row_ids;
  const int64_t step = a.stride == 2 ? 8 : 1;
  for (int64_t i = 0; i < L.nnum; i += step)
    if (a.stride == 2 || !a.nempty || L.children[i] >= 0) row_ids.push_back(i);
  const int64_t R = static_cast<int64_t>(row_ids.size());
  std::vector<int32_t> out(R * K);
  for (int64_t r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) {
      int32_t v = full[row_ids[r] * 27 + slots[k]];
      if (a.nempty && v >= 0) v = L.children[v];  // remap to the non-empty rank (-1 if empty)
      out[r * K + k] = v;
    }
  *rows = R;
  return out;
}

}  // namespace tessera::cpu::octree
