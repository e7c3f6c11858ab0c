// CUDA 3DGS rasterizer: splat_render / splat_backward of tessera/splat.h on
// CUDA tensors, with the CPU rasterizer's semantics (native/cpu/splat/*).
//
// Pipeline per call: prepare (one thread per Gaussian: Σ3D, normalised
// quaternion, sigmoid) once; then per camera
//   project (one thread per Gaussian, splat_math.cuh) → tile count scan →
//   emit (tile << 32 | depth bits, index) per covered tile → stable CUB radix
//   sort → per-tile ranges → blend (one 256-thread block per 16×16 tile, one
//   thread per pixel, Gaussians staged in shared memory 256 at a time).
// Because the emission is in index order and the radix sort is stable, each
// tile's list is in (depth, index) order, the CPU's order.
// Backward per camera: the forward blend (keeping T_final, Σwz and the
// colour), then a front-to-back backward blend with the CPU's formulas
// (raster_tile.h); per Gaussian the 10 projected gradients are summed over a
// warp with shuffles and added to a per-Gaussian buffer with float
// atomicAdd, so their summation order — and the last bits of the gradients —
// can differ from run to run (the CPU backward is deterministic; this one
// is not). A per-Gaussian kernel then applies the projection's chain rule
// into the output rows (one thread per Gaussian, no atomics).
// Scratch comes from the device's stream-ordered pool (kept cached by
// runtime.cu), so frames of the same size reuse the same memory.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <vector>

#include "cuda/entry.cuh"
#include "cuda/splat_math.cuh"

namespace tessera {
// core/validate_splat.cpp (shared with the CPU backend).
void validate_splat_render(const SplatRenderArgs& a);
void validate_splat_backward(const SplatBackwardArgs& a);
}  // namespace tessera

namespace tessera::cuda {
using namespace splat;

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

// Stream-ordered scratch with no fixed limit on the number of buffers.
class DevArena {
 public:
  explicit DevArena(cudaStream_t s) : s_(s) {}
  ~DevArena() {
    for (void* p : ptrs_)
      if (p) cudaFreeAsync(p, s_);  // null: an allocation that failed
  }
  DevArena(const DevArena&) = delete;
  DevArena& operator=(const DevArena&) = delete;
  template <class T> T* alloc(int64_t n) {
    void* p = nullptr;
    ptrs_.push_back(nullptr);
    TS_CUDA(cudaMallocAsync(&p, sizeof(T) * static_cast<size_t>(n > 0 ? n : 1), s_));
    ptrs_.back() = p;
    return static_cast<T*>(p);
  }
 private:
  cudaStream_t s_;
  std::vector<void*> ptrs_;
};

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(n > 0 ? (n + kThreads - 1) / kThreads : 1); }

// Adds the number of lanes where pred holds (one atomic per warp). Every lane
// of the warp must call it.
__device__ __forceinline__ void warp_count(unsigned long long* ctr, bool pred) {
  const unsigned m = __ballot_sync(kFull, pred);
  if ((threadIdx.x & 31) == 0 && m) atomicAdd(ctr, static_cast<unsigned long long>(__popc(m)));
}

enum { kCtrInvalid = 0, kCtrNear = 1, kCtrOutside = 2, kCtrVisible = 3, kCtrCount = 4 };

__global__ void __launch_bounds__(kThreads) prepare_kernel(SceneDev s, Prepared* prep, unsigned long long* ctr) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  bool invalid = false;
  if (i < s.n) {
    prepare_one(s, i, &prep[i]);
    invalid = !prep[i].valid;
  }
  warp_count(&ctr[kCtrInvalid], invalid);
}

__global__ void __launch_bounds__(kThreads) project_kernel(SceneDev s, const Prepared* prep, Frame cam, int aa,
                                                           Projected* proj, int32_t* status, int64_t* tiles,
                                                           unsigned long long* ctr) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  int32_t st = -1;
  if (i < s.n) {
    Projected p;
    st = project_one(s, prep[i], i, cam, aa != 0, &p);
    status[i] = st;
    int64_t area = 0;
    if (st == kProjVisible) {
      proj[i] = p;
      area = int64_t(p.rect[1] - p.rect[0]) * (p.rect[3] - p.rect[2]);
    }
    tiles[i] = area;
  }
  warp_count(&ctr[kCtrNear], st == kProjNear);
  warp_count(&ctr[kCtrOutside], st == kProjOutside);
  warp_count(&ctr[kCtrVisible], st == kProjVisible);
}

__device__ __forceinline__ uint32_t float_bits(float f) { return __float_as_uint(f); }

// Gaussian i's keys at [end - area, end), tiles in row-major rectangle order.
__global__ void __launch_bounds__(kThreads) emit_kernel(const Projected* proj, const int32_t* status,
                                                        const int64_t* tiles_incl, int64_t n, int tiles_x,
                                                        uint64_t* keys, int32_t* vals) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n || status[i] != kProjVisible) return;
  const Projected& p = proj[i];
  const int64_t area = int64_t(p.rect[1] - p.rect[0]) * (p.rect[3] - p.rect[2]);
  int64_t o = tiles_incl[i] - area;
  const uint64_t depth = float_bits(p.depth);  // depth > near > 0: bits order like the floats
  for (int ty = p.rect[2]; ty < p.rect[3]; ++ty)
    for (int tx = p.rect[0]; tx < p.rect[1]; ++tx, ++o) {
      keys[o] = (uint64_t(ty) * tiles_x + tx) << 32 | depth;
      vals[o] = static_cast<int32_t>(i);
    }
}

// ranges[2t], ranges[2t+1] = [begin, end) of tile t in the sorted list (zeroed first).
__global__ void __launch_bounds__(kThreads) ranges_kernel(const uint64_t* keys, int64_t n, int64_t* ranges) {
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= n) return;
  const uint64_t t = keys[e] >> 32;
  if (e == 0 || (keys[e - 1] >> 32) != t) ranges[2 * t] = e;
  if (e == n - 1 || (keys[e + 1] >> 32) != t) ranges[2 * t + 1] = e + 1;
}

struct BlendParams {
  const Projected* proj;
  const int32_t* list;
  const int64_t* ranges;
  int W, H, tiles_x;
  float bg[3];
  // forward outputs (any may be null except rgb)
  float *rgb, *alpha, *depth;
  int32_t* count;
  float *aux_T, *aux_N;  // T_final and Σ w·z, for the backward
  // backward inputs
  const float *g_rgb, *g_alpha, *g_depth;
  float* pgrad;  // [n, 10] ProjGrad sums
};

struct Staged {
  float mx[kThreads], my[kThreads], A[kThreads], B[kThreads], C[kThreads], op[kThreads];
  float r[kThreads], g[kThreads], b[kThreads], z[kThreads];
  int32_t id[kThreads];
};

__device__ __forceinline__ void stage(const BlendParams& p, Staged& s, int64_t e, int64_t end) {
  const int t = threadIdx.x;
  if (e + t < end) {
    const int32_t gi = p.list[e + t];
    const Projected& q = p.proj[gi];
    s.id[t] = gi;
    s.mx[t] = q.mx; s.my[t] = q.my;
    s.A[t] = q.conic[0]; s.B[t] = q.conic[1]; s.C[t] = q.conic[2];
    s.op[t] = q.opacity;
    s.r[t] = q.rgb[0]; s.g[t] = q.rgb[1]; s.b[t] = q.rgb[2];
    s.z[t] = q.depth;
  }
}

// Forward blend (CPU raster_tile.h blend_row): front to back, α = min(0.99,
// o·e^power), skip power > 0 and α < 1/255, stop before a Gaussian that
// would take T below 1e-4.
__global__ void __launch_bounds__(kThreads) blend_forward_kernel(BlendParams p) {
  __shared__ Staged s;
  const int tile = blockIdx.x;
  const int x = (tile % p.tiles_x) * kSplatTile + (threadIdx.x & 15);
  const int y = (tile / p.tiles_x) * kSplatTile + (threadIdx.x >> 4);
  const bool inside = x < p.W && y < p.H;
  const float px = x + 0.5f, py = y + 0.5f;
  const int64_t begin = p.ranges[2 * tile], end = p.ranges[2 * tile + 1];
  float T = 1.f, C0 = 0.f, C1 = 0.f, C2 = 0.f, N = 0.f;
  int32_t cnt = 0;
  bool done = !inside;
  for (int64_t e0 = begin; e0 < end; e0 += kThreads) {
    if (__syncthreads_count(done) == kThreads) break;
    stage(p, s, e0, end);
    __syncthreads();
    const int nb = static_cast<int>(end - e0 < kThreads ? end - e0 : kThreads);
    for (int j = 0; !done && j < nb; ++j) {
      const float dx = s.mx[j] - px, dy = s.my[j] - py;
      const float power = -0.5f * (s.A[j] * dx * dx + s.C[j] * dy * dy) - s.B[j] * dx * dy;
      if (!(power <= 0.f)) continue;
      const float raw = s.op[j] * exp_blend(power);
      const float alpha = raw < kMaxAlpha ? raw : kMaxAlpha;
      if (!(alpha >= kMinAlpha)) continue;
      const float Tn = T * (1.f - alpha);
      if (Tn < kMinTransmittance) { done = true; break; }
      const float w = alpha * T;
      C0 += w * s.r[j]; C1 += w * s.g[j]; C2 += w * s.b[j];
      N += w * s.z[j];
      T = Tn;
      ++cnt;
    }
  }
  if (!inside) return;
  const int64_t pix = int64_t(y) * p.W + x;
  p.rgb[3 * pix] = C0 + T * p.bg[0];
  p.rgb[3 * pix + 1] = C1 + T * p.bg[1];
  p.rgb[3 * pix + 2] = C2 + T * p.bg[2];
  const float a = 1.f - T;
  if (p.alpha) p.alpha[pix] = a;
  if (p.depth) p.depth[pix] = a > 0 ? N / a : 0.f;
  if (p.count) p.count[pix] = cnt;
  if (p.aux_T) p.aux_T[pix] = T;
  if (p.aux_N) p.aux_N[pix] = N;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Backward blend, front to back with the forward's final values (CPU
// raster_tile.h backward_tile): for the colour channels and z with upstream
// gradients g, gN = ∂L/∂(Σwz), gA = ∂L/∂(1−T_final),
//   ∂L/∂α_i = T_i·(c_i·g) − ((C_out − C_≤i)·g − gA·T_final)/(1−α_i)  (0 if α was clamped),
//   ∂L/∂c_i = α_i·T_i·g.
__global__ void __launch_bounds__(kThreads) blend_backward_kernel(BlendParams p) {
  __shared__ Staged s;
  const int tile = blockIdx.x;
  const int x = (tile % p.tiles_x) * kSplatTile + (threadIdx.x & 15);
  const int y = (tile / p.tiles_x) * kSplatTile + (threadIdx.x >> 4);
  const bool inside = x < p.W && y < p.H;
  const float px = x + 0.5f, py = y + 0.5f;
  const int64_t begin = p.ranges[2 * tile], end = p.ranges[2 * tile + 1];
  float Tf = 1.f, Nout = 0.f, Cout[3] = {0.f, 0.f, 0.f}, g[3] = {0.f, 0.f, 0.f}, gN = 0.f, gA = 0.f;
  if (inside) {
    const int64_t pix = int64_t(y) * p.W + x;
    Tf = p.aux_T[pix];
    Nout = p.aux_N[pix];
    for (int c = 0; c < 3; ++c) { Cout[c] = p.rgb[3 * pix + c]; g[c] = p.g_rgb[3 * pix + c]; }
    const float A = 1.f - Tf;
    const float gd = p.g_depth ? p.g_depth[pix] : 0.f;
    gN = A > 0 ? gd / A : 0.f;
    gA = (p.g_alpha ? p.g_alpha[pix] : 0.f) - (A > 0 ? gd * Nout / (A * A) : 0.f);
  }
  float T = 1.f, C[3] = {0.f, 0.f, 0.f}, N = 0.f;
  bool done = !inside;
  for (int64_t e0 = begin; e0 < end; e0 += kThreads) {
    if (__syncthreads_count(done) == kThreads) break;
    stage(p, s, e0, end);
    __syncthreads();
    const int nb = static_cast<int>(end - e0 < kThreads ? end - e0 : kThreads);
    for (int j = 0; j < nb; ++j) {  // every lane walks the batch: the warp sums below need all of them
      float v[10];
      bool ok = false;
      if (!done) {
        const float dx = s.mx[j] - px, dy = s.my[j] - py;
        const float power = -0.5f * (s.A[j] * dx * dx + s.C[j] * dy * dy) - s.B[j] * dx * dy;
        if (power <= 0.f) {
          const float G = exp_blend(power);
          const float raw = s.op[j] * G;
          const float alpha = raw < kMaxAlpha ? raw : kMaxAlpha;
          if (alpha >= kMinAlpha) {
            const float one_m = 1.f - alpha;
            const float Tn = T * one_m;
            if (Tn < kMinTransmittance) {
              done = true;
            } else {
              ok = true;
              const float w = alpha * T;
              C[0] += w * s.r[j]; C[1] += w * s.g[j]; C[2] += w * s.b[j];
              N += w * s.z[j];
              v[6] = w * g[0]; v[7] = w * g[1]; v[8] = w * g[2]; v[9] = w * gN;
              const float own = s.r[j] * g[0] + s.g[j] * g[1] + s.b[j] * g[2] + s.z[j] * gN;
              const float behind = (Cout[0] - C[0]) * g[0] + (Cout[1] - C[1]) * g[1] + (Cout[2] - C[2]) * g[2] +
                                   (Nout - N) * gN;
              const float dalpha = raw < kMaxAlpha ? T * own + (gA * Tf - behind) / one_m : 0.f;
              v[5] = dalpha * G;
              const float dpow = dalpha * raw;
              v[0] = -dpow * (s.A[j] * dx + s.B[j] * dy);
              v[1] = -dpow * (s.C[j] * dy + s.B[j] * dx);
              v[2] = -0.5f * dpow * dx * dx;
              v[3] = -dpow * dx * dy;
              v[4] = -0.5f * dpow * dy * dy;
              T = Tn;
            }
          }
        }
      }
      if (!ok)
        for (int k = 0; k < 10; ++k) v[k] = 0.f;
      if (__any_sync(kFull, ok)) {
        for (int k = 0; k < 10; ++k) v[k] = warp_sum(v[k]);
        if ((threadIdx.x & 31) == 0) {
          float* dst = p.pgrad + 10 * int64_t(s.id[j]);
          for (int k = 0; k < 10; ++k) atomicAdd(dst + k, v[k]);
        }
      }
    }
  }
}

struct GradOut {
  float *mean, *log_scale, *rot, *logit, *sh;
  int64_t K;
};

__global__ void __launch_bounds__(kThreads) project_backward_kernel(SceneDev s, const Prepared* prep, Frame cam, int aa,
                                                                    const Projected* proj, const int32_t* status,
                                                                    const float* pgrad, GradOut o) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= s.n || status[i] != kProjVisible) return;
  const float* q = pgrad + 10 * i;
  // As the CPU (splat_cpu.cpp): a Gaussian no pixel gave a gradient adds
  // nothing. Its chain rule would still multiply zeros by its EWA terms,
  // which overflow for huge screen-space covariances (0·inf = NaN).
  bool zero = true;
  for (int k = 0; k < 10; ++k) zero = zero && q[k] == 0.f;
  if (zero) return;
  const ProjGrad g{q[0], q[1], {q[2], q[3], q[4]}, q[5], {q[6], q[7], q[8]}, q[9]};
  project_backward_one(s, prep[i], i, cam, aa != 0, proj[i], g, o.mean + 3 * i, o.log_scale + 3 * i, o.rot + 4 * i,
                       o.logit + i, o.sh + 3 * o.K * i);
}

// ---- host side ----------------------------------------------------------------

SceneDev scene_dev(const SplatScene& s) {
  SceneDev d;
  d.means = s.means.ptr<float>();
  d.log_scales = s.log_scales.ptr<float>();
  d.rot = s.rotations.ptr<float>();
  d.logit = s.opacity_logits.ptr<float>();
  d.sh = s.sh.ptr<float>();
  d.s_means = s.means.strides[0];
  d.s_ls = s.log_scales.strides[0];
  d.s_rot = s.rotations.strides[0];
  d.s_logit = s.opacity_logits.strides[0];
  d.s_sh0 = s.sh.strides[0];
  d.s_sh1 = s.sh.strides[1];
  d.degree = s.sh_degree;
  d.n = s.means.shape[0];
  return d;
}

// The shared validation (core/validate_splat.cpp) checks shapes, dtypes,
// cameras, options and aliasing; it is written for host tensors, so it sees
// the views relabelled as CPU after we have checked they all live on one
// CUDA device (the alias checks compare addresses, which are unique across
// host and device in CUDA's unified address space).
struct Relabel {
  int32_t device = -1;
  void operator()(TensorView& t, const char* name, bool optional) {
    if (t.empty()) return;  // validation reports a missing tensor
    TESSERA_CHECK(t.device.kind == DeviceKind::kCUDA, kDevice,
                  std::string(name) + " is on the CPU but the other splat tensors are on CUDA; pass all on one device");
    if (device < 0) device = t.device.index;
    TESSERA_CHECK(t.device.index == device, kDevice,
                  std::string(name) + " is on CUDA device " + std::to_string(t.device.index) + ", expected device " +
                      std::to_string(device));
    t.device = Device{};
  }
};

void relabel_scene(Relabel& r, SplatScene& s) {
  r(s.means, "means", false);
  r(s.log_scales, "logScales", false);
  r(s.rotations, "rotations", false);
  r(s.opacity_logits, "opacityLogits", false);
  r(s.sh, "sh", false);
}

// One camera's projection and tile lists.
struct CameraPass {
  Frame cam;
  Projected* proj = nullptr;
  int32_t* status = nullptr;
  int32_t* list = nullptr;
  int64_t* ranges = nullptr;
  int64_t intersections = 0;
  int64_t tiles = 0;
};

int bit_length(uint64_t v) {
  int b = 0;
  while (v) { ++b; v >>= 1; }
  return b;
}

void project_and_bin(const SceneDev& sd, const Prepared* prep, const SplatCamera& camera, float near_plane, bool aa,
                     unsigned long long* ctr, cudaStream_t st, DevArena& ar, CameraPass* pass) {
  const int64_t n = sd.n;
  pass->cam = make_frame(camera, near_plane);
  pass->tiles = int64_t(pass->cam.tiles_x) * pass->cam.tiles_y;
  pass->proj = ar.alloc<Projected>(n);
  pass->status = ar.alloc<int32_t>(n);
  int64_t* tiles = ar.alloc<int64_t>(n);
  int64_t* tiles_incl = ar.alloc<int64_t>(n);
  if (n > 0) {
    project_kernel<<<blocks_for(n), kThreads, 0, st>>>(sd, prep, pass->cam, aa ? 1 : 0, pass->proj, pass->status, tiles,
                                                      ctr);
    TS_LAUNCHED("splat project");
    size_t tmp_bytes = 0;
    TS_CUDA(cub::DeviceScan::InclusiveSum(nullptr, tmp_bytes, tiles, tiles_incl, n, st));
    void* tmp = ar.alloc<unsigned char>(static_cast<int64_t>(tmp_bytes));
    TS_CUDA(cub::DeviceScan::InclusiveSum(tmp, tmp_bytes, tiles, tiles_incl, n, st));
    TS_CUDA(cudaMemcpyAsync(&pass->intersections, tiles_incl + (n - 1), sizeof(int64_t), cudaMemcpyDeviceToHost, st));
    TS_CUDA(cudaStreamSynchronize(st));
  }
  const int64_t total = pass->intersections;
  pass->ranges = ar.alloc<int64_t>(2 * pass->tiles);
  TS_CUDA(cudaMemsetAsync(pass->ranges, 0, sizeof(int64_t) * 2 * pass->tiles, st));
  if (total == 0) return;
  uint64_t* k0 = ar.alloc<uint64_t>(total);
  uint64_t* k1 = ar.alloc<uint64_t>(total);
  int32_t* v0 = ar.alloc<int32_t>(total);
  int32_t* v1 = ar.alloc<int32_t>(total);
  emit_kernel<<<blocks_for(n), kThreads, 0, st>>>(pass->proj, pass->status, tiles_incl, n, pass->cam.tiles_x, k0, v0);
  TS_LAUNCHED("splat emit");
  cub::DoubleBuffer<uint64_t> keys(k0, k1);
  cub::DoubleBuffer<int32_t> vals(v0, v1);
  const int end_bit = 32 + bit_length(static_cast<uint64_t>(pass->tiles));
  size_t tmp_bytes = 0;
  TS_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, tmp_bytes, keys, vals, total, 0, end_bit, st));
  void* tmp = ar.alloc<unsigned char>(static_cast<int64_t>(tmp_bytes));
  TS_CUDA(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, keys, vals, total, 0, end_bit, st));
  ranges_kernel<<<blocks_for(total), kThreads, 0, st>>>(keys.Current(), total, pass->ranges);
  TS_LAUNCHED("splat ranges");
  pass->list = vals.Current();
}

void check_tiles(const SplatCamera& c) {
  const int64_t tiles = int64_t((c.width + kSplatTile - 1) / kSplatTile) * ((c.height + kSplatTile - 1) / kSplatTile);
  TESSERA_CHECK(tiles < (int64_t(1) << 31), kInvalidArgument, "splat: too many tiles");  // validation caps 32768²
}

SplatStats read_stats(const unsigned long long* ctr_dev, int64_t n, int64_t intersections, cudaStream_t st) {
  unsigned long long c[kCtrCount] = {};
  TS_CUDA(cudaMemcpyAsync(c, ctr_dev, sizeof(c), cudaMemcpyDeviceToHost, st));
  TS_CUDA(cudaStreamSynchronize(st));
  SplatStats s;
  s.gaussians = n;
  s.invalid = static_cast<int64_t>(c[kCtrInvalid]);
  s.culled_near = static_cast<int64_t>(c[kCtrNear]);
  s.culled_outside = static_cast<int64_t>(c[kCtrOutside]);
  s.visible = static_cast<int64_t>(c[kCtrVisible]);
  s.intersections = intersections;
  return s;
}

}  // namespace

void run_splat_render(const SplatRenderArgs& args) {
  SplatRenderArgs v = args;
  Relabel rl;
  relabel_scene(rl, v.scene);
  rl(v.rgb, "rgb", false);
  rl(v.alpha, "alpha", true);
  rl(v.depth, "depth", true);
  rl(v.contributors, "contributors", true);
  validate_splat_render(v);
  const int32_t dev = rl.device;
  cudaStream_t st = stream_for(dev);
  const SplatRenderArgs& a = args;
  check_tiles(a.cameras[0]);
  const SceneDev sd = scene_dev(a.scene);
  const int64_t n = sd.n;
  DevArena ar(st);
  Prepared* prep = ar.alloc<Prepared>(n);
  unsigned long long* ctr = ar.alloc<unsigned long long>(kCtrCount);
  TS_CUDA(cudaMemsetAsync(ctr, 0, sizeof(unsigned long long) * kCtrCount, st));
  if (n > 0) {
    prepare_kernel<<<blocks_for(n), kThreads, 0, st>>>(sd, prep, ctr);
    TS_LAUNCHED("splat prepare");
  }
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t W = a.cameras[0].width, H = a.cameras[0].height, P = W * H;
  int64_t intersections = 0;
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    DevArena cam_ar(st);
    CameraPass pass;
    project_and_bin(sd, prep, a.cameras[c], a.near_plane, aa, ctr, st, cam_ar, &pass);
    intersections += pass.intersections;
    BlendParams bp{};
    bp.proj = pass.proj;
    bp.list = pass.list;
    bp.ranges = pass.ranges;
    bp.W = static_cast<int>(W);
    bp.H = static_cast<int>(H);
    bp.tiles_x = pass.cam.tiles_x;
    for (int k = 0; k < 3; ++k) bp.bg[k] = a.background[k];
    bp.rgb = a.rgb.ptr<float>() + c * P * 3;
    bp.alpha = a.alpha.empty() ? nullptr : a.alpha.ptr<float>() + c * P;
    bp.depth = a.depth.empty() ? nullptr : a.depth.ptr<float>() + c * P;
    bp.count = a.contributors.empty() ? nullptr : a.contributors.ptr<int32_t>() + c * P;
    blend_forward_kernel<<<static_cast<unsigned>(pass.tiles), kThreads, 0, st>>>(bp);
    TS_LAUNCHED("splat blend");
  }
  const SplatStats stats = read_stats(ctr, n, intersections, st);
  if (a.stats) *a.stats = stats;
}

void run_splat_backward(const SplatBackwardArgs& args) {
  SplatBackwardArgs v = args;
  Relabel rl;
  relabel_scene(rl, v.scene);
  rl(v.grad_rgb, "gradRgb", false);
  rl(v.grad_alpha, "gradAlpha", true);
  rl(v.grad_depth, "gradDepth", true);
  rl(v.grad_means, "gradMeans", false);
  rl(v.grad_log_scales, "gradLogScales", false);
  rl(v.grad_rotations, "gradRotations", false);
  rl(v.grad_opacity_logits, "gradOpacityLogits", false);
  rl(v.grad_sh, "gradSh", false);
  validate_splat_backward(v);
  const int32_t dev = rl.device;
  cudaStream_t st = stream_for(dev);
  const SplatBackwardArgs& a = args;
  check_tiles(a.cameras[0]);
  const SceneDev sd = scene_dev(a.scene);
  const int64_t n = sd.n;
  for (const TensorView* t : {&a.grad_means, &a.grad_log_scales, &a.grad_rotations, &a.grad_opacity_logits, &a.grad_sh})
    if (t->numel() > 0) TS_CUDA(cudaMemsetAsync(t->data, 0, sizeof(float) * t->numel(), st));
  GradOut go{a.grad_means.ptr<float>(), a.grad_log_scales.ptr<float>(), a.grad_rotations.ptr<float>(),
             a.grad_opacity_logits.ptr<float>(), a.grad_sh.ptr<float>(), a.scene.sh.shape[1]};
  DevArena ar(st);
  Prepared* prep = ar.alloc<Prepared>(n);
  unsigned long long* ctr = ar.alloc<unsigned long long>(kCtrCount);
  TS_CUDA(cudaMemsetAsync(ctr, 0, sizeof(unsigned long long) * kCtrCount, st));
  if (n > 0) {
    prepare_kernel<<<blocks_for(n), kThreads, 0, st>>>(sd, prep, ctr);
    TS_LAUNCHED("splat prepare");
  }
  const bool aa = a.mode == SplatMode::kAntialiased;
  const int64_t W = a.cameras[0].width, H = a.cameras[0].height, P = W * H;
  float* fwd_rgb = ar.alloc<float>(3 * P);
  float* fwd_T = ar.alloc<float>(P);
  float* fwd_N = ar.alloc<float>(P);
  float* pgrad = ar.alloc<float>(10 * n);
  int64_t intersections = 0;
  for (int32_t c = 0; c < a.num_cameras; ++c) {
    DevArena cam_ar(st);
    CameraPass pass;
    project_and_bin(sd, prep, a.cameras[c], a.near_plane, aa, ctr, st, cam_ar, &pass);
    intersections += pass.intersections;
    BlendParams bp{};
    bp.proj = pass.proj;
    bp.list = pass.list;
    bp.ranges = pass.ranges;
    bp.W = static_cast<int>(W);
    bp.H = static_cast<int>(H);
    bp.tiles_x = pass.cam.tiles_x;
    for (int k = 0; k < 3; ++k) bp.bg[k] = a.background[k];
    bp.rgb = fwd_rgb;
    bp.aux_T = fwd_T;
    bp.aux_N = fwd_N;
    blend_forward_kernel<<<static_cast<unsigned>(pass.tiles), kThreads, 0, st>>>(bp);
    TS_LAUNCHED("splat blend (backward's forward)");
    if (n == 0) continue;
    bp.g_rgb = a.grad_rgb.ptr<float>() + c * P * 3;
    bp.g_alpha = a.grad_alpha.empty() ? nullptr : a.grad_alpha.ptr<float>() + c * P;
    bp.g_depth = a.grad_depth.empty() ? nullptr : a.grad_depth.ptr<float>() + c * P;
    bp.pgrad = pgrad;
    TS_CUDA(cudaMemsetAsync(pgrad, 0, sizeof(float) * 10 * n, st));
    blend_backward_kernel<<<static_cast<unsigned>(pass.tiles), kThreads, 0, st>>>(bp);
    TS_LAUNCHED("splat blend backward");
    project_backward_kernel<<<blocks_for(n), kThreads, 0, st>>>(sd, prep, pass.cam, aa ? 1 : 0, pass.proj, pass.status,
                                                                pgrad, go);
    TS_LAUNCHED("splat project backward");
  }
  const SplatStats stats = read_stats(ctr, n, intersections, st);
  if (a.stats) *a.stats = stats;
}

}  // namespace tessera::cuda
