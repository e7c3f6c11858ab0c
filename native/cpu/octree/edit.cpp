// merge_octrees, octree_split, octree_grow and search_key (ocnn-pytorch
// Octree), and the OctreeView of an owned Octree.
#include <algorithm>

#include "cpu/octree/octree_cpu.h"

namespace tessera {

OctreeView octree_view(const Octree& o) {
  OctreeView v;
  v.depth = o.depth;
  v.full_depth = o.full_depth;
  v.batch_size = o.batch_size;
  for (const auto& L : o.levels)
    v.levels.push_back({L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), L.nnum_nempty});
  // A signal that is present but has no rows still needs a non-null pointer.
  static const float kNoRows = 0.f;
  auto ptr = [](bool has, const OctreeArray<float>& v) { return !has ? nullptr : v.empty() ? &kNoRows : v.data(); };
  v.points = ptr(o.has_points, o.points);
  v.normals = ptr(o.has_normals, o.normals);
  v.features = ptr(o.has_features, o.features);
  v.feature_channels = o.feature_channels;
  return v;
}

}  // namespace tessera

namespace tessera::cpu::octree {

Octree merge(const std::vector<OctreeView>& parts) {
  Octree o;
  const OctreeView& p0 = parts[0];
  o.depth = p0.depth;
  o.full_depth = p0.full_depth;
  o.batch_size = 0;
  for (const auto& p : parts) o.batch_size += p.batch_size;
  o.levels.resize(o.depth + 1);
  for (int d = 0; d <= o.depth; ++d) {
    OctreeLevel& L = o.levels[d];
    int64_t boff = 0, coff = 0;
    for (const auto& p : parts) {
      const OctreeLevelView& s = p.levels[d];
      for (int64_t i = 0; i < s.nnum; ++i) {
        // Replace the batch bits: part-local id + the samples before this part.
        L.keys.push_back(((batch_of(s.keys[i]) + boff) << kOctreeBatchShift) | (s.keys[i] & kOctreeKeyMask));
        L.children.push_back(s.children[i] >= 0 ? static_cast<int32_t>(s.children[i] + coff) : -1);
      }
      boff += p.batch_size;
      coff += s.nnum_nempty;
    }
    L.nnum_nempty = coff;
    batch_counts(L.keys.data(), L.children.data(), static_cast<int64_t>(L.keys.size()), o.batch_size,
                 &L.batch_nnum, &L.batch_nnum_nempty);
  }
  const int D = o.depth;
  o.feature_channels = p0.feature_channels;
  o.has_points = p0.points != nullptr;
  o.has_normals = p0.normals != nullptr;
  o.has_features = p0.features != nullptr;
  for (const auto& p : parts) {
    const int64_t u = p.levels[D].nnum_nempty;
    if (p0.points) o.points.insert(o.points.end(), p.points, p.points + u * 3);
    if (p0.normals) o.normals.insert(o.normals.end(), p.normals, p.normals + u * 3);
    if (p0.features) o.features.insert(o.features.end(), p.features, p.features + u * p.feature_channels);
  }
  return o;
}

OctreeLevel split(const OctreeLevelView& level, const int32_t* flags, int32_t batch_size) {
  OctreeLevel L;
  L.keys.assign(level.keys, level.keys + level.nnum);
  L.children.resize(level.nnum);
  int32_t run = 0;
  for (int64_t i = 0; i < level.nnum; ++i) L.children[i] = flags[i] != 0 ? run++ : -1;
  if (run == 0 && level.nnum > 0) {  // ocnn: at least one node splits
    L.children[0] = 0;
    run = 1;
  }
  L.nnum_nempty = run;
  batch_counts(L.keys.data(), L.children.data(), level.nnum, batch_size, &L.batch_nnum, &L.batch_nnum_nempty);
  return L;
}

OctreeLevel grow(const OctreeLevelView& level, int32_t batch_size) {
  OctreeLevel L;
  for (int64_t i = 0; i < level.nnum; ++i) {
    if (level.children[i] < 0) continue;
    const int64_t k = level.keys[i];
    const int64_t b = k & ~kOctreeKeyMask;  // batch bits stay where they are
    for (int c = 0; c < 8; ++c) L.keys.push_back(b | ((k & kOctreeKeyMask) << 3) | c);
  }
  const int64_t n = static_cast<int64_t>(L.keys.size());
  L.children.resize(n);
  for (int64_t i = 0; i < n; ++i) L.children[i] = static_cast<int32_t>(i);
  L.nnum_nempty = n;
  batch_counts(L.keys.data(), L.children.data(), n, batch_size, &L.batch_nnum, &L.batch_nnum_nempty);
  return L;
}

void search_keys(const OctreeLevelView& level, const int64_t* queries, int64_t n, int32_t* out) {
  const int64_t* b = level.keys;
  const int64_t* e = level.keys + level.nnum;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* it = std::lower_bound(b, e, queries[i]);
    out[i] = (it != e && *it == queries[i]) ? static_cast<int32_t>(it - b) : -1;
  }
}

}  // namespace tessera::cpu::octree
