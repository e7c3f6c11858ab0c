// Input features of ocnn's Octree.get_input_feature, in its fixed order
// N (3), D (1), L (3), P (3), F (C), from the depth-D signals. Points are the
// mean positions in cell units, so frac() is the position inside the cell.
#include <cmath>

#include "cpu/octree/octree_cpu.h"

namespace tessera::cpu::octree {

std::vector<float> input_features(const OctreeView& o, const std::string& spec, bool nempty, int64_t* rows,
                                  int32_t* channels) {
  auto has = [&](char ch) { return spec.find(ch) != std::string::npos; };
  const bool fn = has('N'), fd = has('D'), fl = has('L'), fp = has('P'), ff = has('F');
  const int32_t C = (fn ? 3 : 0) + (fd ? 1 : 0) + (fl ? 3 : 0) + (fp ? 3 : 0) + (ff ? o.feature_channels : 0);
  const OctreeLevelView& L = o.levels[o.depth];
  const int64_t U = L.nnum_nempty;
  const int64_t R = nempty ? U : L.nnum;
  std::vector<float> out(R * C, 0.f);
  const float gscale = std::ldexp(1.f, 1 - o.depth);
  auto fill = [&](int64_t u, float* dst) {
    const float* p = o.points ? o.points + u * 3 : nullptr;
    const float* n = o.normals ? o.normals + u * 3 : nullptr;
    float local[3] = {0, 0, 0};
    if (p)
      for (int c = 0; c < 3; ++c) local[c] = (p[c] - std::trunc(p[c])) - 0.5f;  // torch frac()
    int k = 0;
    if (fn) for (int c = 0; c < 3; ++c) dst[k++] = n[c];
    if (fd) dst[k++] = local[0] * n[0] + local[1] * n[1] + local[2] * n[2];
    if (fl) for (int c = 0; c < 3; ++c) dst[k++] = local[c];
    if (fp) for (int c = 0; c < 3; ++c) dst[k++] = p[c] * gscale - 1.f;
    if (ff) for (int32_t c = 0; c < o.feature_channels; ++c) dst[k++] = o.features[u * o.feature_channels + c];
  };
  if (nempty) {
    for (int64_t u = 0; u < U; ++u) fill(u, &out[u * C]);
  } else {
    for (int64_t i = 0; i < L.nnum; ++i)
      if (L.children[i] >= 0) fill(L.children[i], &out[i * C]);
  }
  *rows = R;
  *channels = C;
  return out;
}

}  // namespace tessera::cpu::octree
