// CPU 3DGS rasterizer, internal interfaces. The pipeline per camera is
//   project (16 Gaussians per SIMD step) → global depth sort → per depth
//   chunk: stable scatter into the 16×16 tiles still blending, blend (per
//   tile, SIMD over 16-pixel tile rows),
// and for the backward: depth sort → all tile lists → blend-backward (per
// tile, gradients for the blended prefix of its list) → reduce per Gaussian
// in a fixed order → project-backward.
// Nothing uses atomics, so results are bitwise reproducible for any thread
// count.
#pragma once
#include <cstdint>
#include <vector>

#include "tessera/splat.h"

namespace tessera::cpu {
void splat_render(const SplatRenderArgs& a);
void splat_backward(const SplatBackwardArgs& a);
}  // namespace tessera::cpu

namespace tessera::cpu::splat {

// Camera-independent per-Gaussian values, computed once per call.
// 32 bytes: the backward recomputes the normalised quaternion and the scales.
struct Prepared {
  float cov[6];     // Σ3D: xx, xy, xz, yy, yz, zz
  float opacity;    // sigmoid(logit)
  int32_t valid;    // 0 = skipped (counted in SplatStats::invalid)
};

// World→camera rotation W, translation t, and the derived quantities.
struct CameraFrame {
  float W[9], t[3], campos[3];
  float fx, fy, cx, cy;
  float lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;  // guard band on tx/tz, ty/tz
  int32_t width, height, tiles_x, tiles_y;
  float near_plane;
};
CameraFrame make_frame(const SplatCamera& c, float near_plane);

// Tiles [x0, x1) × [y0, y1) where a Gaussian's α can reach 1/255.
struct TileRect { int16_t x0, x1, y0, y1; };

// One Gaussian projected into one camera (what the tile kernels read).
// One cache line each: the tile gather reads them in depth order, i.e. at
// random addresses, once per tile intersection.
struct alignas(64) Projected {
  float mx, my;          // mean in pixels (pixel centres at i + 0.5)
  float conic[3];        // inverse of the dilated Σ2D: A, B, C
  float opacity;         // sigmoid(logit), times the compensation if antialiased
  float rgb[3];          // clamped SH colour
  float depth;           // view-space z
  float ky, row_thr;     // a tile row at vertical offset dy is skipped when dy²·ky > row_thr
  float bda;             // B/A: along a pixel row, the power peaks at x = mx + (B/A)·dy
  int32_t clamped;       // bit c: rgb[c] was clamped at 0 (no SH gradient)
};

enum : int32_t { kProjVisible = 0, kProjNear = 1, kProjOutside = 2, kProjInvalid = 3 };
// The depth key of a Gaussian that is not visible (visible keys are the bits
// of a positive finite depth, below 0x7f800000).
constexpr uint32_t kNoDepthKey = ~0u;

struct SceneRef {
  const SplatScene* scene;
  const Prepared* prep;  // null when nothing reads the records back (a one-camera forward)
  int64_t n;
  // Set for the first camera of a call: its projection computes the Prepared
  // values instead of reading them, and stores them into prep_out (== prep)
  // unless that is null.
  bool first = false;
  Prepared* prep_out = nullptr;
};

// Gradients of one Gaussian's projected values (summed over its tiles).
struct ProjectedGrad {
  float mx, my, conic[3], opacity, rgb[3], depth;
};
// Adds the chain rule of project_gaussian (§1b steps 2-3) into the per-Gaussian
// parameter gradients (rows of the contiguous outputs).
void project_gaussian_backward(const SceneRef& s, int64_t i, const CameraFrame& cam, bool antialiased,
                               const Projected& p, const ProjectedGrad& g, float* d_mean, float* d_log_scale,
                               float* d_rot, float* d_logit, float* d_sh /* [K,3] */);

// Tile lists of one camera: tile t owns list[offsets[t] .. offsets[t+1]),
// front to back (by depth, ties by index).
struct TileBins {
  int64_t num_visible = 0;
  int64_t* offsets = nullptr;     // [tiles + 1]
  int32_t* list = nullptr;        // [intersections] Gaussian indices
  int64_t intersections = 0;
  int64_t capacity = 0;           // of list (bin_range reuses it)
};

// The visible Gaussians in (depth, index) order with their tile rectangles.
struct DepthOrder {
  int64_t num_visible = 0;
  int32_t* order = nullptr;   // [num_visible] Gaussian indices
  TileRect* rects = nullptr;  // [num_visible]
  int64_t intersections = 0;  // total area of the rectangles
};

// Call-lifetime memory from the host pool (tessera/pool.h), returned on
// destruction: the buffers of one render are reused by the next.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();
  void* get(size_t bytes);
  template <class T> T* array(int64_t n) { return static_cast<T*>(get(sizeof(T) * static_cast<size_t>(n > 0 ? n : 1))); }
 private:
  std::vector<void*> blocks_;
};

// What a projection adds up over its Gaussians: the count of each kProj*
// code and, over the visible ones, the range of their depth keys and the
// total area of their tile rectangles.
struct ProjectSums {
  int64_t count[4] = {0, 0, 0, 0};
  uint32_t key_min = ~0u, key_max = 0;
  int64_t area = 0;
};
// The visible Gaussians grouped into the forward's depth chunks: ranges of
// buckets (the top, at most 8, bits of the depth key), the first holding
// about 1/16 of them, each next one about twice the previous (no full sort:
// a chunk sorts only its Gaussians that reach a tile still blending).
struct DepthBuckets {
  int64_t num_visible = 0;
  int64_t intersections = 0;  // total area of the visible Gaussians' rectangles
  uint64_t* items = nullptr;  // [num_visible] (key − smallest key) << 32 | index; by chunk, index order within
  TileRect* rects = nullptr;  // [num_visible] the items' rectangles
  int64_t* offsets = nullptr; // [buckets + 1] items before bucket b (in key order)
  int buckets = 1, low_bits = 0;  // bucket = key >> low_bits
  int chunks = 0;
  int64_t* chunk_bucket = nullptr;  // [chunks + 1] chunk c = buckets [chunk_bucket[c], chunk_bucket[c + 1])
};
// sums: the projection's (the visible Gaussians' count, key range and area).
// depth_key: kNoDepthKey for the Gaussians that are not visible.
void bucket_by_depth(const uint32_t* depth_key, const TileRect* rects, int64_t n, const ProjectSums& sums,
                     Arena* arena, DepthBuckets* out);
// The Gaussians of depth chunk `chunk` whose rectangle holds a tile with
// live[t] != 0, in (depth, index) order (out->intersections is not set).
void depth_chunk(const DepthBuckets& b, int chunk, const TileRect* rects, const CameraFrame& cam,
                 const uint32_t* live, Arena* arena, DepthOrder* out);
// Tile lists of the Gaussians at depth ranks [k0, k1), front to back, into
// bins (its offsets and list are reused when allocated). Tiles t with
// skip[t] == 0 get empty lists (skip may be null).
void bin_range(const DepthOrder& d, int64_t k0, int64_t k1, const CameraFrame& cam, const uint32_t* skip,
               Arena* arena, TileBins* bins);
// Per-tile gradient rows of the backward blend: 10 floats (ProjectedGrad
// layout) for each entry of a prefix of the tile's list (the entries after
// it have zero gradient). Rows come from per-thread blocks of the host pool,
// returned on destruction, so memory follows the blended prefixes, not the
// full lists.
class GradRows {
 public:
  GradRows(int64_t tiles, int threads, Arena* arena);
  GradRows(const GradRows&) = delete;
  GradRows& operator=(const GradRows&) = delete;
  ~GradRows();
  // Rows for the first `used` entries of `tile`, called once per tile by thread tid.
  float* take(int tid, int64_t tile, int64_t used);
  const float* rows(int64_t tile) const { return rows_[tile]; }
  int64_t used(int64_t tile) const { return used_[tile]; }
 private:
  struct Block { char* base = nullptr; size_t cap = 0, off = 0; };
  float** rows_;
  int64_t* used_;
  std::vector<std::vector<void*>> blocks_;  // per thread, all acquired
  std::vector<Block> cur_;                  // per thread, the one being filled
};

// Per-ISA tile kernels (raster_tile.h compiled once per instruction set).
struct TileOutputs {  // row pointers for one camera, pixel (x, y) at [y*W + x]
  float* rgb;
  float* alpha;
  float* depth;
  int32_t* contributors;
};
struct TileGrads {  // upstream gradients for one camera
  const float* rgb;    // [H*W*3]
  const float* alpha;  // [H*W] or null
  const float* depth;  // [H*W] or null
};
constexpr size_t kTileStateBytes = size_t(kSplatTile) * 7 * 64;  // 16 rows × (T, C[3], N, count, active)
constexpr uint32_t kTileUnstarted = ~0u;
struct RasterKernels {
  // Projects Gaussians [begin, end) (project_simd.h): depth_key[i] = the
  // depth's float bits when visible (then proj[i] and rects[i] filled), else
  // kNoDepthKey; adds the kProj* codes, key range and area up into *sums.
  void (*project)(const SceneRef& s, int64_t begin, int64_t end, const CameraFrame& cam, bool antialiased,
                  Projected* proj, uint32_t* depth_key, TileRect* rects, ProjectSums* sums);
  // The forward in depth chunks: blends the tile's list in `bins` (the next
  // chunk of its Gaussians) into its state (kTileStateBytes, initialised when
  // *live == kTileUnstarted); *live = bit mask of the rows still blending,
  // 0 once the tile has saturated. Then finish_tile writes the outputs.
  // Returns the length of the list prefix the tile's rows may have blended
  // (the whole list while a row still blends).
  int64_t (*blend_chunk)(const Projected* proj, const TileBins& bins, const CameraFrame& cam, int64_t tile, int tid,
                         void* state, uint32_t* live);
  void (*finish_tile)(const CameraFrame& cam, const float* bg, int64_t tile, void* state, uint32_t live,
                      const TileOutputs& out);
  // Writes the tile's gradient rows (ProjectedGrad layout) for the first
  // `used` entries of its list into sink->take(tid, tile, used), given the
  // forward's final tile state and live mask (blend_chunk's; kTileUnstarted:
  // no Gaussian reached the tile).
  void (*backward)(const Projected* proj, const TileBins& bins, const CameraFrame& cam, const float* bg,
                   int64_t tile, int tid, const TileGrads& g, const void* fw_state, uint32_t fw_live, int64_t used,
                   GradRows* sink);
};
const RasterKernels& raster_kernels_avx512();
const RasterKernels& raster_kernels_avx2();
const RasterKernels& raster_kernels_scalar();

}  // namespace tessera::cpu::splat
