// Public entry points of the octree family: validate, then run. Only the CPU
// backend exists so far (validation refuses CUDA tensors with ERR_DEVICE).
#include <string>

#include "cpu/octree/octree_cpu.h"

namespace tessera {

uint64_t octree_xyz_to_key(uint32_t x, uint32_t y, uint32_t z) { return cpu::octree::xyz_key(x, y, z); }

void octree_key_to_xyz(uint64_t key, uint32_t* x, uint32_t* y, uint32_t* z) {
  *x = cpu::octree::compact3(key >> 2);
  *y = cpu::octree::compact3(key >> 1);
  *z = cpu::octree::compact3(key);
}

Octree octree_build(const OctreeBuildArgs& a, OctreeBuildReport* report) {
  validate_octree_build(a);
  return cpu::octree::build(a, report);
}

Octree octree_merge(const std::vector<OctreeView>& parts) {
  TESSERA_CHECK(!parts.empty(), kInvalidArgument, "octree merge: no octrees to merge");
  int64_t batch = 0;
  for (const auto& p : parts) {
    validate_octree_view(p, "octree merge");
    TESSERA_CHECK(p.depth == parts[0].depth && p.full_depth == parts[0].full_depth, kInvalidArgument,
                  "octree merge: every octree needs the same depth and full depth (ocnn merge_octrees)");
    TESSERA_CHECK((p.points != nullptr) == (parts[0].points != nullptr) &&
                      (p.normals != nullptr) == (parts[0].normals != nullptr) &&
                      (p.features != nullptr) == (parts[0].features != nullptr) &&
                      p.feature_channels == parts[0].feature_channels,
                  kInvalidArgument, "octree merge: the octrees carry different signals (points/normals/features)");
    batch += p.batch_size;
  }
  TESSERA_CHECK(batch <= kOctreeMaxBatch, kInvalidArgument, "octree merge: more than 32768 samples in total");
  return cpu::octree::merge(parts);
}

OctreeLevel octree_split(const OctreeLevelView& level, const int32_t* flags, int32_t batch_size) {
  TESSERA_CHECK(level.nnum >= 0 && (level.nnum == 0 || (level.keys && flags)), kShape, "octree split: missing keys or flags");
  return cpu::octree::split(level, flags, batch_size);
}

OctreeLevel octree_grow(const OctreeLevelView& level, int32_t batch_size) {
  TESSERA_CHECK(level.nnum_nempty * 8 < (int64_t(1) << 31), kInvalidArgument, "octree grow: too many nodes for int32 indices");
  for (int64_t i = 0; i < level.nnum; ++i)
    TESSERA_CHECK((level.keys[i] & kOctreeKeyMask) < (int64_t(1) << 45), kInvalidArgument,
                  "octree grow: depth 16 is the deepest an octree can go");
  return cpu::octree::grow(level, batch_size);
}

void octree_search_keys(const OctreeLevelView& level, const int64_t* queries, int64_t n, int32_t* out) {
  cpu::octree::search_keys(level, queries, n, out);
}

std::vector<int32_t> octree_neighbors(const OctreeView& o, const OctreeNeighborArgs& a, int64_t* rows) {
  validate_octree_view(o, "octree neighbors");
  TESSERA_CHECK(a.depth >= 0 && a.depth <= o.depth, kInvalidArgument,
                "octree neighbors: depth must be 0.." + std::to_string(o.depth) + ", got " + std::to_string(a.depth));
  TESSERA_CHECK(a.stride == 1 || a.stride == 2, kInvalidArgument, "octree neighbors: stride must be 1 or 2");
  TESSERA_CHECK(static_cast<int32_t>(a.kernel) >= 0 && static_cast<int32_t>(a.kernel) <= 7, kInvalidArgument,
                "octree neighbors: kernel must be one of 333, 222, 311, 131, 113, 331, 313, 133");
  return cpu::octree::neighbors(o, a, rows);
}

std::vector<float> octree_input_features(const OctreeView& o, const std::string& spec, bool nempty, int64_t* rows,
                                         int32_t* channels) {
  validate_octree_view(o, "octree inputFeatures");
  TESSERA_CHECK(!spec.empty() && spec.find_first_not_of("NDLPF") == std::string::npos, kInvalidArgument,
                "octree inputFeatures: feature must be letters of 'NDLPF' (upper case), got '" + spec + "'");
  const bool need_n = spec.find_first_of("ND") != std::string::npos;
  const bool need_p = spec.find_first_of("DLP") != std::string::npos;
  TESSERA_CHECK(!need_n || o.normals, kInvalidArgument, "octree inputFeatures: N and D need normals; build with normals");
  TESSERA_CHECK(!need_p || o.points, kInvalidArgument, "octree inputFeatures: D, L and P need the mean points of a built octree");
  TESSERA_CHECK(spec.find('F') == std::string::npos || (o.features && o.feature_channels > 0), kInvalidArgument,
                "octree inputFeatures: F needs features; build with features");
  return cpu::octree::input_features(o, spec, nempty, rows, channels);
}

void octree_serialize(const int64_t* keys, int64_t n, int32_t depth, SerialOrder order, int32_t* perm,
                      int32_t* inverse) {
  TESSERA_CHECK(depth >= 0 && depth <= kOctreeMaxDepth, kInvalidArgument, "octree serialize: depth must be 0..16");
  TESSERA_CHECK(static_cast<int32_t>(order) >= 0 && static_cast<int32_t>(order) <= 3, kInvalidArgument,
                "octree serialize: order must be z, z-trans, hilbert or hilbert-trans");
  const int64_t cell_limit = int64_t(1) << (3 * depth);
  for (int64_t i = 0; i < n; ++i)
    TESSERA_CHECK(keys[i] >= 0 && (keys[i] & kOctreeKeyMask) < cell_limit, kInvalidArgument,
                  "octree serialize: key " + std::to_string(i) + " is not a depth-" + std::to_string(depth) + " key");
  cpu::octree::serialize(keys, n, depth, order, perm, inverse);
}

OctreeWindowPlan octree_window_plan(const OctreeWindowArgs& a) {
  validate_octree_window(a);
  return cpu::octree::window_plan(a);
}

void octree_rows(const RowGatherArgs& a) {
  validate_octree_rows(a);
  cpu::octree::rows(a);
}

void octree_dwconv(const OctreeDwConvArgs& a) {
  validate_octree_dwconv(a);
  cpu::octree::dwconv(a);
}

void octree_rpe_bias(const OctreeRpeBiasArgs& a) {
  validate_octree_rpe_bias(a);
  cpu::octree::rpe_bias(a);
}

}  // namespace tessera
