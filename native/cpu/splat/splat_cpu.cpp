// CPU entry points of the 3DGS rasterizer (arguments already validated):
// prepare the Gaussians once, then per camera project → bin → blend, and for
// the backward blend-backward → fixed-order reduction → project-backward.
// Every parallel loop writes disjoint memory, so the results do not depend on
// the thread count or scheduling.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "cpu/splat/splat_cpu.h"
#include "tessera/cpu.h"
#include "tessera/threadpool.h"

namespace tessera::cpu {
using namespace splat;

namespace {

const RasterKernels& kernels() {
  switch (active_isa()) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: return raster_kernels_avx512();
    case Isa::kAvx2: return raster_kernels_avx2();
    case Isa::kScalar: break;
  }
  return raster_kernels_scalar();
}

constexpr int64_t kGrainGaussians = 2048;

// TESSERA_SPLAT_PROFILE=1 prints each stage's wall and process CPU ms to
// stderr (for `tessera bench splat`; the machine may be shared, so CPU time
// is the steadier figure).
class StageClock {
 public:
  StageClock() : on_(std::getenv("TESSERA_SPLAT_PROFILE") != nullptr) { lap(nullptr); }
  void lap(const char* stage) {
    if (!on_) return;
    timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    const double wall = w.tv_sec * 1e3 + w.tv_nsec * 1e-6, cpu = c.tv_sec * 1e3 + c.tv_nsec * 1e-6;
    if (stage) std::fprintf(stderr, "splat %-10s wall %7.2f ms  cpu %7.2f ms\n", stage, wall - wall_, cpu - cpu_);
    wall_ = wall;
    cpu_ = cpu;
  }
 private:
  bool on_;
  double wall_ = 0, cpu_ = 0;
};

int64_t prepare_all(const SplatScene& s, Prepared* prep) {
  std::atomic<int64_t> invalid{0};  // an integer count: order does not matter
  ThreadPool::global().parallel_for(s.means.shape[0], kGrainGaussians, [&](int64_t b, int64_t e, int) {
    invalid += prepare_gaussians(s, b, e, prep);
  });
  return invalid.load();
}

// One camera's projected Gaussians and tile lists.
struct CameraPass {
  CameraFrame cam;
  Projected* proj;
  int32_t* status;
  TileBins bins;
};

void project_and_bin(const SceneRef& s, const SplatCamera& camera, float near_plane, bool aa, bool want_slots,
                     Arena* arena, CameraPass* pass, SplatStats* stats) {
  pass->cam = make_frame(camera, near_plane);
  pass->proj = arena->array<Projected>(s.n);
  pass->status = arena->array<int32_t>(s.n);
  StageClock clock;
  ThreadPool::global().parallel_for(s.n, kGrainGaussians, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) pass->status[i] = project_gaussian(s, i, pass->cam, aa, &pass->proj[i]);
  });
  clock.lap("project");
  bin_tiles(pass->proj, pass->status, s.n, pass->cam, want_slots, arena, &pass->bins);
  clock.lap("binning");
  for (int64_t i = 0; i < s.n; ++i) {
    stats->culled_near += pass->status[i] == kProjNear;
    stats->culled_outside += pass->status[i] == kProjOutside;
  }
  stats->visible += pass->bins.num_visible;
  stats->intersections += pass->bins.intersections;
}

int64_t num_tiles(const CameraFrame& c) { return int64_t(c.tiles_x) * c.tiles_y; }

}  // namespace

void splat_render(const SplatRenderArgs& a) {
  const SplatScene& scene = a.scene;
  const int64_t n = scene.means.shape[0];
  SplatStats stats;
  stats.gaussians = n;
  Arena arena;
  StageClock clock;
  Prepared* prep = arena.array<Prepared>(n);
  stats.invalid = prepare_all(scene, prep);
  clock.lap("prepare");
  const SceneRef s{&scene, prep, n};
  const RasterKernels& ker = kernels();
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t pixels = int64_t(a.cameras[0].width) * a.cameras[0].height;
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    Arena cam_arena;
    CameraPass pass;
    project_and_bin(s, a.cameras[c], a.near_plane, aa, false, &cam_arena, &pass, &stats);
    clock.lap(nullptr);
    TileOutputs out{a.rgb.ptr<float>() + c * pixels * 3, a.alpha.empty() ? nullptr : a.alpha.ptr<float>() + c * pixels,
                    a.depth.empty() ? nullptr : a.depth.ptr<float>() + c * pixels,
                    a.contributors.empty() ? nullptr : a.contributors.ptr<int32_t>() + c * pixels};
    ThreadPool::global().parallel_for(num_tiles(pass.cam), 1, [&](int64_t b, int64_t e, int tid) {
      for (int64_t t = b; t < e; ++t) ker.forward(pass.proj, pass.bins, pass.cam, a.background, t, tid, out);
    });
    clock.lap("blend");
  }
  if (a.stats) *a.stats = stats;
}

void splat_backward(const SplatBackwardArgs& a) {
  const SplatScene& scene = a.scene;
  const int64_t n = scene.means.shape[0];
  const int64_t K = scene.sh.shape[1];
  for (const TensorView* t : {&a.grad_means, &a.grad_log_scales, &a.grad_rotations, &a.grad_opacity_logits, &a.grad_sh})
    std::memset(t->data, 0, sizeof(float) * t->numel());
  SplatStats stats;
  stats.gaussians = n;
  Arena arena;
  Prepared* prep = arena.array<Prepared>(n);
  stats.invalid = prepare_all(scene, prep);
  const SceneRef s{&scene, prep, n};
  const RasterKernels& ker = kernels();
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t pixels = int64_t(a.cameras[0].width) * a.cameras[0].height;
  float *dm = a.grad_means.ptr<float>(), *dls = a.grad_log_scales.ptr<float>(), *dq = a.grad_rotations.ptr<float>();
  float *dl = a.grad_opacity_logits.ptr<float>(), *dsh = a.grad_sh.ptr<float>();
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    Arena cam_arena;
    CameraPass pass;
    project_and_bin(s, a.cameras[c], a.near_plane, aa, true, &cam_arena, &pass, &stats);
    const TileBins& bins = pass.bins;
    float* igrad = cam_arena.array<float>(10 * bins.intersections);  // per intersection, ProjectedGrad layout
    const TileGrads up{a.grad_rgb.ptr<float>() + c * pixels * 3,
                       a.grad_alpha.empty() ? nullptr : a.grad_alpha.ptr<float>() + c * pixels,
                       a.grad_depth.empty() ? nullptr : a.grad_depth.ptr<float>() + c * pixels};
    ThreadPool::global().parallel_for(num_tiles(pass.cam), 1, [&](int64_t b, int64_t e, int tid) {
      for (int64_t t = b; t < e; ++t) ker.backward(pass.proj, bins, pass.cam, a.background, t, tid, up, igrad);
    });
    // Each Gaussian sums its intersections in emission (tile rectangle) order,
    // then applies the projection's chain rule to its own output rows. The
    // loop runs in index order (rank[i] = its place in depth order), so the
    // scene's rows and the gradient rows stream instead of being hit at random.
    int32_t* rank = cam_arena.array<int32_t>(n);
    std::fill(rank, rank + n, -1);
    for (int64_t k = 0; k < bins.num_visible; ++k) rank[bins.order[k]] = static_cast<int32_t>(k);
    ThreadPool::global().parallel_for(n, 256, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t k = rank[i];
        if (k < 0) continue;
        float g[10] = {0};
        for (int64_t em = bins.emit_begin[k]; em < bins.emit_begin[k + 1]; ++em) {
          const float* src = igrad + 10 * bins.slot[em];
          for (int j = 0; j < 10; ++j) g[j] += src[j];
        }
        const ProjectedGrad pg{g[0], g[1], {g[2], g[3], g[4]}, g[5], {g[6], g[7], g[8]}, g[9]};
        project_gaussian_backward(s, i, pass.cam, aa, pass.proj[i], pg, dm + 3 * i, dls + 3 * i, dq + 4 * i, dl + i,
                                  dsh + 3 * K * i);
      }
    });
  }
  if (a.stats) *a.stats = stats;
}

}  // namespace tessera::cpu
