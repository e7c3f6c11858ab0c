// CPU entry points of the 3DGS rasterizer (arguments already validated):
// per camera project → bin and blend in depth chunks (the first camera's
// projection also prepares the camera-independent values), and for the
// backward the same forward (its final tile states and the tile lists up to
// saturation) → blend-backward → fixed-order reduction → project-backward.
// Every parallel loop writes disjoint memory, so the results do not depend on
// the thread count or scheduling.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

#include "cpu/splat/splat_cpu.h"
#include "tessera/cpu.h"
#include "tessera/pool.h"
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

thread_local SplatStageTimes t_stage_times;

// Per-stage wall and process CPU time (for `tessera bench splat`, through
// splat_take_stage_times; the machine may be shared, so CPU time is the
// steadier figure). TESSERA_SPLAT_PROFILE=1 also prints each lap to stderr.
class StageClock {
 public:
  StageClock() : print_(std::getenv("TESSERA_SPLAT_PROFILE") != nullptr) { now(&wall_, &cpu_); }
  void lap(SplatStage stage) {
    double wall, cpu;
    now(&wall, &cpu);
    t_stage_times.wall_ms[stage] += wall - wall_;
    t_stage_times.cpu_ms[stage] += cpu - cpu_;
    if (print_)
      std::fprintf(stderr, "splat %-16s wall %7.2f ms  cpu %7.2f ms\n", kSplatStageNames[stage], wall - wall_, cpu - cpu_);
    wall_ = wall;
    cpu_ = cpu;
  }
 private:
  static void now(double* wall, double* cpu) {
    timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    *wall = w.tv_sec * 1e3 + w.tv_nsec * 1e-6;
    *cpu = c.tv_sec * 1e3 + c.tv_nsec * 1e-6;
  }
  bool print_;
  double wall_ = 0, cpu_ = 0;
};

// One camera's projected Gaussians and tile lists.
struct CameraPass {
  CameraFrame cam;
  Projected* proj;
  TileBins bins;          // the backward's tile lists (blend_in_chunks)
  DepthBuckets buckets;   // the visible Gaussians by depth chunk
  TileRect* rects = nullptr;  // [n] per Gaussian
};

// Camera c of a call: the first one also prepares the Gaussians (and counts
// the invalid ones, once per call). Projects, then groups the visible
// Gaussians by depth chunk (blend_in_chunks sorts and bins each chunk).
void project_and_bin(const SceneRef& scene, int32_t c, const SplatCamera& camera, float near_plane, bool aa,
                     Arena* arena, CameraPass* pass, SplatStats* stats, StageClock* clock) {
  SceneRef s = scene;
  if (c == 0) {
    s.first = true;
    s.prep_out = const_cast<Prepared*>(scene.prep);
  }
  pass->cam = make_frame(camera, near_plane);
  pass->proj = arena->array<Projected>(s.n);
  uint32_t* depth_key = arena->array<uint32_t>(s.n);
  TileRect* rects = pass->rects = arena->array<TileRect>(s.n);
  // Integer sums, minima and maxima: the order of the blocks does not matter.
  ProjectSums sums;
  std::mutex m;
  const RasterKernels& ker = kernels();
  ThreadPool::global().parallel_for(s.n, kGrainGaussians, [&](int64_t b, int64_t e, int) {
    ProjectSums part;
    ker.project(s, b, e, pass->cam, aa, pass->proj, depth_key, rects, &part);
    std::lock_guard<std::mutex> lk(m);
    for (int k = 0; k < 4; ++k) sums.count[k] += part.count[k];
    sums.key_min = std::min(sums.key_min, part.key_min);
    sums.key_max = std::max(sums.key_max, part.key_max);
    sums.area += part.area;
  });
  clock->lap(kSplatStageProject);
  bucket_by_depth(depth_key, rects, s.n, sums, arena, &pass->buckets);
  stats->visible += pass->buckets.num_visible;
  stats->intersections += pass->buckets.intersections;
  clock->lap(kSplatStageBin);
  if (c == 0) stats->invalid = sums.count[kProjInvalid];
  stats->culled_near += sums.count[kProjNear];
  stats->culled_outside += sums.count[kProjOutside];
}

int64_t num_tiles(const CameraFrame& c) { return int64_t(c.tiles_x) * c.tiles_y; }

// The backward's per-Gaussian gradient sum, kept in the first ten floats of
// its Projected record: zeroes them (src null) or adds one gradient row.
void grad_set(Projected& p, const float* src) {
  float* f[10] = {&p.mx, &p.my, &p.conic[0], &p.conic[1], &p.conic[2], &p.opacity, &p.rgb[0], &p.rgb[1], &p.rgb[2],
                  &p.depth};
  for (int k = 0; k < 10; ++k) *f[k] = src ? *f[k] + src[k] : 0.f;
}

// The forward blend of one camera in depth chunks of growing size (whole
// depth buckets, front to back): each chunk's Gaussians that reach a tile
// still blending are sorted, binned into those tiles and blended into their
// state, so a tile stops costing work (list entries included) once it
// saturates, most do within their first few hundred Gaussians, and the
// Gaussians behind saturated tiles are never sorted. Per pixel the blend sees
// the same Gaussians in the same order as over the whole depth-sorted list.
// state: kTileStateBytes per tile, live: the tiles' row masks (kTileUnstarted
// until a Gaussian reaches the tile). With `lists` (the backward), also
// returns each tile's list up to the prefix its rows may have blended: the
// same entries as that prefix of its full list (the entries after it get no
// gradient).
void blend_in_chunks(const CameraPass& pass, const RasterKernels& ker, char* state, uint32_t* live, Arena* arena,
                     StageClock* clock, TileBins* lists) {
  const int64_t tiles = num_tiles(pass.cam);
  std::fill(live, live + tiles, kTileUnstarted);
  ThreadPool& pool = ThreadPool::global();
  const DepthBuckets& bk = pass.buckets;
  TileBins bins;
  std::vector<TileBins> kept;      // lists: each chunk's bins (own list arrays)
  std::vector<int64_t*> prefix;    // lists: per chunk and tile, the entries the tile may have blended
  for (int c = 0; c < bk.chunks; ++c) {
    DepthOrder chunk;
    depth_chunk(bk, c, pass.rects, pass.cam, live, arena, &chunk);
    if (lists) bins = TileBins{};
    bin_range(chunk, 0, chunk.num_visible, pass.cam, live, arena, &bins);
    clock->lap(kSplatStageBin);
    int64_t* used = lists ? arena->array<int64_t>(tiles) : nullptr;
    // 16 tiles per claim: their live masks fill one cache line, which the
    // two threads would otherwise pass back and forth at every tile.
    pool.parallel_for(tiles, 16, [&](int64_t b, int64_t e, int tid) {
      for (int64_t t = b; t < e; ++t) {
        int64_t u = 0;
        if (bins.offsets[t + 1] > bins.offsets[t])
          u = ker.blend_chunk(pass.proj, bins, pass.cam, t, tid, state + kTileStateBytes * t, &live[t]);
        if (used) used[t] = u;
      }
    });
    clock->lap(kSplatStageBlend);
    if (lists) {
      kept.push_back(bins);
      prefix.push_back(used);
    }
    if (std::all_of(live, live + tiles, [](uint32_t l) { return l == 0; })) break;
  }
  if (!lists) return;
  // Each tile's prefixes of its chunk lists, in chunk order.
  lists->offsets = arena->array<int64_t>(tiles + 1);
  int64_t run = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    lists->offsets[t] = run;
    for (int64_t* u : prefix) run += u[t];
  }
  lists->offsets[tiles] = run;
  lists->intersections = lists->capacity = run;
  lists->num_visible = bk.num_visible;
  lists->list = arena->array<int32_t>(run);
  pool.parallel_for(tiles, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      int32_t* dst = lists->list + lists->offsets[t];
      for (size_t c = 0; c < kept.size(); ++c) {
        const int32_t* src = kept[c].list + kept[c].offsets[t];
        dst = std::copy(src, src + prefix[c][t], dst);
      }
    }
  });
  clock->lap(kSplatStageBin);
}

}  // namespace

void splat_render(const SplatRenderArgs& a) {
  const SplatScene& scene = a.scene;
  const int64_t n = scene.means.shape[0];
  SplatStats stats;
  stats.gaussians = n;
  Arena arena;
  StageClock clock;
  // The Prepared records are read back only by the cameras after the first.
  const SceneRef s{&scene, a.num_cameras > 1 ? arena.array<Prepared>(n) : nullptr, n};
  const RasterKernels& ker = kernels();
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t pixels = int64_t(a.cameras[0].width) * a.cameras[0].height;
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    Arena cam_arena;
    CameraPass pass;
    project_and_bin(s, c, a.cameras[c], a.near_plane, aa, &cam_arena, &pass, &stats, &clock);
    TileOutputs out{a.rgb.ptr<float>() + c * pixels * 3, a.alpha.empty() ? nullptr : a.alpha.ptr<float>() + c * pixels,
                    a.depth.empty() ? nullptr : a.depth.ptr<float>() + c * pixels,
                    a.contributors.empty() ? nullptr : a.contributors.ptr<int32_t>() + c * pixels};
    const int64_t tiles = num_tiles(pass.cam);
    char* state = static_cast<char*>(cam_arena.get(kTileStateBytes * static_cast<size_t>(tiles)));
    uint32_t* live = cam_arena.array<uint32_t>(tiles);
    blend_in_chunks(pass, ker, state, live, &cam_arena, &clock, nullptr);
    ThreadPool& pool = ThreadPool::global();
    // One row of tiles per claim: the output rows of neighbouring tiles meet
    // in shared cache lines (16 pixels of alpha are one line, but the
    // caller's images need not start on a line), so the two threads meet
    // only where one tile row's pixels end and the next one's begin.
    pool.parallel_for(tiles, pass.cam.tiles_x, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) ker.finish_tile(pass.cam, a.background, t, state + kTileStateBytes * t, live[t], out);
    });
    clock.lap(kSplatStageBlend);
  }
  if (a.stats) *a.stats = stats;
}

void splat_backward(const SplatBackwardArgs& a) {
  const SplatScene& scene = a.scene;
  const int64_t n = scene.means.shape[0];
  const int64_t K = scene.sh.shape[1];
  StageClock clock;
  // The outputs are zeroed row by row by the first camera's project-backward
  // loop, just before it adds the Gaussian's gradients (one pass over them).
  SplatStats stats;
  stats.gaussians = n;
  Arena arena;
  const SceneRef s{&scene, arena.array<Prepared>(n), n};
  clock.lap(kSplatStagePrepare);
  const RasterKernels& ker = kernels();
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t pixels = int64_t(a.cameras[0].width) * a.cameras[0].height;
  float *dm = a.grad_means.ptr<float>(), *dls = a.grad_log_scales.ptr<float>(), *dq = a.grad_rotations.ptr<float>();
  float *dl = a.grad_opacity_logits.ptr<float>(), *dsh = a.grad_sh.ptr<float>();
  ThreadPool& pool = ThreadPool::global();
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    Arena cam_arena;
    CameraPass pass;
    // The forward again, in depth chunks as splat_render: its final tile
    // states and each tile's list up to the prefix its rows may have blended
    // (no full depth sort, no list entries behind saturated tiles).
    project_and_bin(s, c, a.cameras[c], a.near_plane, aa, &cam_arena, &pass, &stats, &clock);
    const int64_t tiles = num_tiles(pass.cam);
    char* state = static_cast<char*>(cam_arena.get(kTileStateBytes * static_cast<size_t>(tiles)));
    uint32_t* live = cam_arena.array<uint32_t>(tiles);
    TileBins& bins = pass.bins;
    blend_in_chunks(pass, ker, state, live, &cam_arena, &clock, &bins);
    const TileGrads up{a.grad_rgb.ptr<float>() + c * pixels * 3,
                       a.grad_alpha.empty() ? nullptr : a.grad_alpha.ptr<float>() + c * pixels,
                       a.grad_depth.empty() ? nullptr : a.grad_depth.ptr<float>() + c * pixels};
    GradRows rows(tiles, pool.num_threads(), &cam_arena);
    // 8 tiles per claim: GradRows' row pointers and counts of the tiles of one
    // claim share cache lines (as the live masks above).
    pool.parallel_for(tiles, 8, [&](int64_t b, int64_t e, int tid) {
      for (int64_t t = b; t < e; ++t)
        ker.backward(pass.proj, bins, pass.cam, a.background, t, tid, up, state + kTileStateBytes * t, live[t],
                     bins.offsets[t + 1] - bins.offsets[t], &rows);
    });
    clock.lap(kSplatStageBlendBackward);
    // Each Gaussian sums its rows in tile order (the same for any thread
    // count: a chunk of Gaussian indices scans every tile's rows and keeps
    // its own), then applies the projection's chain rule to its own output
    // rows in index order, so the scene's rows and the outputs stream.
    // The sums go into the first ten floats of the Gaussian's own Projected
    // record (mx, my, conic, opacity, rgb, depth: the ProjectedGrad layout),
    // whose values the rest of the backward no longer needs (it reads only
    // `clamped`), so the reduction takes no memory of its own.
    // seen[i]: Gaussian i has a gradient row; its first one is added to
    // zero (the sum's first term, as before), so the records of the others
    // are neither zeroed nor read back.
    Projected* proj = pass.proj;
    uint8_t* seen = cam_arena.array<uint8_t>(n);
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), n / 4096));
    pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1, int) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        const int64_t lo = n * ch / chunks, hi = n * (ch + 1) / chunks;
        std::memset(seen + lo, 0, static_cast<size_t>(hi - lo));
        for (int64_t t = 0; t < tiles; ++t) {
          const int32_t* list = bins.list + bins.offsets[t];
          const float* src = rows.rows(t);
          for (int64_t j = 0, used = rows.used(t); j < used; ++j) {
            // The records summed into lie at random: asked for 16 entries ahead.
            if (j + 16 < used) __builtin_prefetch(&proj[list[j + 16]]);
            const int64_t g = list[j];
            if (g < lo || g >= hi) continue;
            if (!seen[g]) {
              grad_set(proj[g], nullptr);
              seen[g] = 1;
            }
            grad_set(proj[g], src + 10 * j);
          }
        }
      }
    });
    pool.parallel_for(n, 256, [&](int64_t b, int64_t e, int) {
      if (c == 0) {
        std::memset(dm + 3 * b, 0, sizeof(float) * 3 * (e - b));
        std::memset(dls + 3 * b, 0, sizeof(float) * 3 * (e - b));
        std::memset(dq + 4 * b, 0, sizeof(float) * 4 * (e - b));
        std::memset(dl + b, 0, sizeof(float) * (e - b));
        std::memset(dsh + 3 * K * b, 0, sizeof(float) * 3 * K * (e - b));
      }
      // The rows a Gaussian kAhead places on reads (the Gaussians with
      // gradients are scattered over the index range, so the hardware
      // prefetchers do not see a stream): its SH row above all (192 bytes
      // at degree 3), its Projected and Prepared records and parameter rows.
      constexpr int64_t kAhead = 24;
      const int64_t sh_bytes = int64_t(sizeof(float)) * std::min<int64_t>(scene.sh.strides[0], 256);
      auto ask = [](const void* p, int64_t bytes) {
        for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(static_cast<const char*>(p) + o);
      };
      for (int64_t i = b; i < e; ++i) {
        if (i + kAhead < e && seen[i + kAhead]) {
          const int64_t j = i + kAhead;
          ask(scene.sh.ptr<float>() + j * scene.sh.strides[0], sh_bytes);
          __builtin_prefetch(&proj[j]);
          __builtin_prefetch(&s.prep[j]);
          __builtin_prefetch(scene.means.ptr<float>() + j * scene.means.strides[0]);
          __builtin_prefetch(scene.rotations.ptr<float>() + j * scene.rotations.strides[0]);
          __builtin_prefetch(scene.log_scales.ptr<float>() + j * scene.log_scales.strides[0]);
        }
        if (!seen[i]) continue;  // no gradient row (or not visible): nothing to add
        const Projected& q = proj[i];
        const ProjectedGrad pg{q.mx, q.my, {q.conic[0], q.conic[1], q.conic[2]}, q.opacity,
                               {q.rgb[0], q.rgb[1], q.rgb[2]}, q.depth};
        const float g[10] = {pg.mx, pg.my, pg.conic[0], pg.conic[1], pg.conic[2], pg.opacity,
                             pg.rgb[0], pg.rgb[1], pg.rgb[2], pg.depth};
        bool zero = true;  // every entry past the blended prefixes: nothing to add
        for (int k = 0; k < 10; ++k) zero &= g[k] == 0.f;
        if (zero) continue;
        project_gaussian_backward(s, i, pass.cam, aa, q, pg, dm + 3 * i, dls + 3 * i, dq + 4 * i, dl + i,
                                  dsh + 3 * K * i);
      }
    });
    clock.lap(kSplatStageProjectBackward);
  }
  if (a.stats) *a.stats = stats;
}

}  // namespace tessera::cpu

namespace tessera {
SplatStageTimes splat_take_stage_times() {
  const SplatStageTimes t = cpu::t_stage_times;
  cpu::t_stage_times = SplatStageTimes{};
  return t;
}
}  // namespace tessera

namespace tessera::cpu::splat {

GradRows::GradRows(int64_t tiles, int threads, Arena* arena)
    : rows_(arena->array<float*>(tiles)), used_(arena->array<int64_t>(tiles)), blocks_(threads), cur_(threads) {
  std::fill(rows_, rows_ + tiles, nullptr);
  std::fill(used_, used_ + tiles, 0);
}

GradRows::~GradRows() {
  for (auto& list : blocks_)
    for (void* p : list) host_release(p);
}

float* GradRows::take(int tid, int64_t tile, int64_t used) {
  constexpr size_t kBlock = size_t(4) << 20;
  const size_t bytes = sizeof(float) * 10 * static_cast<size_t>(std::max<int64_t>(used, 1));
  Block& b = cur_[tid];
  if (b.off + bytes > b.cap) {
    size_t cap = 0;
    blocks_[tid].push_back(nullptr);  // reserve first so a failed acquire leaks nothing
    void* p = host_acquire(std::max(bytes, kBlock), &cap);
    blocks_[tid].back() = p;
    b = Block{static_cast<char*>(p), cap, 0};
  }
  float* r = reinterpret_cast<float*>(b.base + b.off);
  b.off += (bytes + 63) & ~size_t(63);
  rows_[tile] = r;
  used_[tile] = used;
  return r;
}

}  // namespace tessera::cpu::splat
