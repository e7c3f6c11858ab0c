// Tile binning (spec §1 "Binning"), CPU form. The reference sorts
// (tile << 32 | depth) keys on the GPU; here the visible Gaussians are sorted
// once by depth (a stable LSD radix sort of the float bits, which order like
// the floats because depth > near > 0), then scattered tile by tile in that
// order. A stable scatter keeps each tile's list in (depth, index) order, the
// same order as the reference's key sort with index tie-breaks, and its
// result does not depend on how the work is split between threads.
#include <algorithm>
#include <cstring>

#include "cpu/splat/splat_cpu.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::splat {
namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Stable LSD radix sort of (key, value) pairs by key, 8 bits per pass;
// passes where every key has the same byte are skipped.
void radix_sort(uint32_t* keys, int32_t* vals, uint32_t* tmp_keys, int32_t* tmp_vals, int64_t n) {
  for (int shift = 0; shift < 32; shift += 8) {
    int64_t count[257] = {0};
    for (int64_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & 255) + 1];
    if (std::any_of(count + 1, count + 257, [n](int64_t c) { return c == n; })) continue;
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t d = count[(keys[i] >> shift) & 255]++;
      tmp_keys[d] = keys[i];
      tmp_vals[d] = vals[i];
    }
    std::memcpy(keys, tmp_keys, sizeof(uint32_t) * n);
    std::memcpy(vals, tmp_vals, sizeof(int32_t) * n);
  }
}

}  // namespace

Arena::~Arena() {
  for (void* p : blocks_)
    if (p) host_release(p);
}

void* Arena::get(size_t bytes) {
  blocks_.push_back(nullptr);  // reserve first so a failed acquire leaks nothing
  blocks_.back() = host_acquire(bytes);
  return blocks_.back();
}

void bin_tiles(const Projected* proj, const int32_t* status, int64_t n, const CameraFrame& cam, bool want_slots,
               Arena* arena, TileBins* bins) {
  int64_t nv = 0;
  for (int64_t i = 0; i < n; ++i) nv += status[i] == kProjVisible;
  bins->num_visible = nv;
  uint32_t* keys = arena->array<uint32_t>(nv);
  uint32_t* tmp_keys = arena->array<uint32_t>(nv);
  int32_t* tmp_vals = arena->array<int32_t>(nv);
  bins->order = arena->array<int32_t>(nv);
  for (int64_t i = 0, j = 0; i < n; ++i)
    if (status[i] == kProjVisible) {
      keys[j] = float_bits(proj[i].depth);
      bins->order[j++] = static_cast<int32_t>(i);
    }
  radix_sort(keys, bins->order, tmp_keys, tmp_vals, nv);

  // The tile rectangles in depth order, read once at random addresses here so
  // that the two passes below over all intersections stream them.
  struct Rect { int16_t x0, x1, y0, y1; };
  Rect* rects = arena->array<Rect>(nv);
  bins->emit_begin = arena->array<int64_t>(nv + 1);
  bins->emit_begin[0] = 0;
  for (int64_t k = 0; k < nv; ++k) {
    const int16_t* r = proj[bins->order[k]].rect;
    rects[k] = Rect{r[0], r[1], r[2], r[3]};
    bins->emit_begin[k + 1] = bins->emit_begin[k] + int64_t(r[1] - r[0]) * (r[3] - r[2]);
  }
  const int64_t total = bins->emit_begin[nv];
  bins->intersections = total;
  const int64_t tiles = int64_t(cam.tiles_x) * cam.tiles_y;
  bins->offsets = arena->array<int64_t>(tiles + 1);
  bins->list = arena->array<int32_t>(total);
  bins->slot = want_slots ? arena->array<int64_t>(total) : nullptr;

  // Chunked counting sort by tile: per-chunk histograms, then each chunk
  // scatters from its own cursors. Cursor order (tile, chunk) keeps stability.
  ThreadPool& pool = ThreadPool::global();
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(4 * pool.num_threads(), nv / 2048));
  int64_t* cursor = arena->array<int64_t>(chunks * tiles);
  auto chunk_range = [&](int64_t c, int64_t* b, int64_t* e) { *b = nv * c / chunks; *e = nv * (c + 1) / chunks; };
  auto for_each_tile = [&](int64_t k, auto&& fn) {
    const Rect r = rects[k];
    for (int ty = r.y0; ty < r.y1; ++ty)
      for (int tx = r.x0; tx < r.x1; ++tx) fn(int64_t(ty) * cam.tiles_x + tx);
  };
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* h = cursor + c * tiles;
      std::fill(h, h + tiles, 0);
      int64_t b, e;
      chunk_range(c, &b, &e);
      for (int64_t k = b; k < e; ++k) for_each_tile(k, [&](int64_t t) { ++h[t]; });
    }
  });
  int64_t run = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    bins->offsets[t] = run;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t cnt = cursor[c * tiles + t];
      cursor[c * tiles + t] = run;
      run += cnt;
    }
  }
  bins->offsets[tiles] = run;
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* cur = cursor + c * tiles;
      int64_t b, e;
      chunk_range(c, &b, &e);
      for (int64_t k = b; k < e; ++k) {
        int64_t emit = bins->emit_begin[k];
        const int32_t g = bins->order[k];
        for_each_tile(k, [&](int64_t t) {
          const int64_t pos = cur[t]++;
          bins->list[pos] = g;
          if (bins->slot) bins->slot[emit] = pos;
          ++emit;
        });
      }
    }
  });
}

}  // namespace tessera::cpu::splat
