// Tile binning (spec §1 "Binning"), CPU form. The reference sorts
// (tile << 32 | depth) keys on the GPU; here the visible Gaussians are
// grouped into depth chunks (by the top bits of their depth key), and each
// chunk's Gaussians that reach a tile still blending are sorted by depth (a
// stable LSD radix sort of the float bits, which order like the floats
// because depth > near > 0; the projection writes them), then scattered tile
// by tile in that order. A stable scatter keeps each tile's list in (depth, index) order, the
// same order as the reference's key sort with index tie-breaks. Every step
// runs on fixed chunks with per-chunk histograms and cursors taken in
// (bucket, chunk) order, so the result does not depend on the threads.
#include <algorithm>
#include <cstring>

#include "cpu/splat/splat_cpu.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera::cpu::splat {
namespace {

// Chunking of n items into `chunks` contiguous ranges.
// grain: chunks per claim, so each thread takes one run of adjacent chunks
// (the chunks' outputs meet in shared cache lines: at bucket and tile
// boundaries, a cursor of one chunk ends where the next chunk's starts, and
// two threads storing into the same line at once pass it back and forth).
struct Chunks {
  int64_t n, count;
  int64_t begin(int64_t c) const { return n * c / count; }
  int64_t end(int64_t c) const { return n * (c + 1) / count; }
  int64_t grain() const {
    const int64_t threads = ThreadPool::global().num_threads();
    return (count + threads - 1) / threads;
  }
};
Chunks chunks_for(int64_t n, int64_t min_items) {
  const int64_t threads = ThreadPool::global().num_threads();
  return Chunks{n, std::max<int64_t>(1, std::min<int64_t>(4 * threads, n / min_items))};
}

// Stable LSD radix sort of 64-bit items by their high 32 bits (the depth
// key less the smallest key, below 2^key_bits; the low 32 bits carry the
// Gaussian index, in increasing order), in ceil(key_bits / 12) passes of
// equal digits (a depth range within a factor of 2-4 takes 24 bits: two
// passes); a pass where every key has the same digit is skipped. Parallel
// over chunks; the result is independent of the chunking.
uint64_t* radix_sort(uint64_t* items, uint64_t* tmp, int64_t n, int key_bits, Arena* arena) {
  if (key_bits == 0) return items;  // one key: already in index order
  const int passes = (key_bits + 11) / 12, digit_bits = (key_bits + passes - 1) / passes;
  const int kBuckets = 1 << digit_bits;
  const Chunks ch = chunks_for(n, 16384);
  int64_t* hist = arena->array<int64_t>(ch.count * kBuckets);
  ThreadPool& pool = ThreadPool::global();
  for (int shift = 32; shift < 32 + key_bits; shift += digit_bits) {
    auto digit = [shift, kBuckets](uint64_t v) { return static_cast<int>((v >> shift) & (kBuckets - 1)); };
    // The loops read what they use from locals: through the closure's
    // references GCC reloads them after every store.
    pool.parallel_for(ch.count, ch.grain(), [&, items, hist, digit, ch](int64_t c0, int64_t c1, int) {
      const uint64_t* __restrict in = items;
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* __restrict h = hist + c * kBuckets;
        std::fill(h, h + kBuckets, 0);
        for (int64_t i = ch.begin(c), e = ch.end(c); i < e; ++i) ++h[digit(in[i])];
      }
    });
    // Cursors in (digit, chunk) order; skip the pass when one digit holds every item.
    bool trivial = false;
    int64_t run = 0;
    for (int d = 0; d < kBuckets; ++d) {
      int64_t total = 0;
      for (int64_t c = 0; c < ch.count; ++c) total += hist[c * kBuckets + d];
      if (total == n) { trivial = true; break; }
      for (int64_t c = 0; c < ch.count; ++c) {
        const int64_t cnt = hist[c * kBuckets + d];
        hist[c * kBuckets + d] = run;
        run += cnt;
      }
    }
    if (trivial) continue;
    pool.parallel_for(ch.count, ch.grain(), [&, items, tmp, hist, digit, ch](int64_t c0, int64_t c1, int) {
      const uint64_t* __restrict in = items;
      uint64_t* __restrict out = tmp;
      for (int64_t c = c0; c < c1; ++c) {
        int64_t* __restrict cur = hist + c * kBuckets;
        for (int64_t i = ch.begin(c), e = ch.end(c); i < e; ++i) out[cur[digit(in[i])]++] = in[i];
      }
    });
    std::swap(items, tmp);
  }
  return items;
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

void bucket_by_depth(const uint32_t* depth_key, const TileRect* rects, int64_t n, const ProjectSums& sums,
                     Arena* arena, DepthBuckets* out) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t nv = sums.count[kProjVisible];
  out->num_visible = nv;
  out->intersections = sums.area;
  const Chunks cg = chunks_for(n, 16384);
  const uint32_t key_lo = sums.key_min, key_hi = sums.key_max;
  const int key_bits = nv > 0 && key_hi > key_lo ? 32 - __builtin_clz(key_hi - key_lo) : 0;
  // 256 buckets: fine enough for the chunk sizes (1/16 of the Gaussians
  // and more).
  const int top_bits = std::min(key_bits, 8);
  out->low_bits = key_bits - top_bits;
  out->buckets = 1 << top_bits;
  const int nb = out->buckets, low = out->low_bits;
  // Counts per chunk and bucket (the key's top digit).
  int64_t* hist = arena->array<int64_t>(cg.count * nb);
  pool.parallel_for(cg.count, cg.grain(), [&, depth_key, hist, cg, key_lo, nb, low](int64_t c0, int64_t c1, int) {
    const uint32_t* __restrict key = depth_key;
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* __restrict h = hist + c * nb;
      std::fill(h, h + nb, 0);
      for (int64_t i = cg.begin(c), e = cg.end(c); i < e; ++i)
        if (key[i] != kNoDepthKey) ++h[(key[i] - key_lo) >> low];
    }
  });
  out->offsets = arena->array<int64_t>(nb + 1);
  int64_t run = 0;
  for (int d = 0; d < nb; ++d) {
    out->offsets[d] = run;
    for (int64_t c = 0; c < cg.count; ++c) run += hist[c * nb + d];
  }
  out->offsets[nb] = run;
  // Depth chunks of whole buckets: the first holds about 1/16 of the
  // visible Gaussians (at least 16384), each next one about twice the
  // previous; they depend on the counts only (the forward may stop early).
  int32_t* chunk_of = arena->array<int32_t>(nb);
  out->chunk_bucket = arena->array<int64_t>(nb + 1);
  out->chunks = 0;
  out->chunk_bucket[0] = 0;
  for (int64_t b0 = 0, step = std::max<int64_t>(nv / 16, 16384); b0 < nb; step *= 2) {
    int64_t b1 = b0 + 1;
    while (b1 < nb && out->offsets[b1] - out->offsets[b0] < step) ++b1;
    for (int64_t b = b0; b < b1; ++b) chunk_of[b] = out->chunks;
    out->chunk_bucket[++out->chunks] = b1;
    b0 = b1;
  }
  // The visible Gaussians grouped by depth chunk, index order within
  // (items and their rectangles, so a chunk's coverage filter reads them in
  // sequence): a stable scatter into a few streams, cursors in (depth chunk,
  // chunk) order.
  const int nc = out->chunks;  // <= nb <= 256
  int64_t* cur = arena->array<int64_t>(cg.count * nc);
  std::fill(cur, cur + cg.count * nc, 0);
  for (int64_t c = 0; c < cg.count; ++c)
    for (int d = 0; d < nb; ++d) cur[c * nc + chunk_of[d]] += hist[c * nb + d];
  run = 0;
  for (int d = 0; d < nc; ++d)
    for (int64_t c = 0; c < cg.count; ++c) {
      const int64_t cnt = cur[c * nc + d];
      cur[c * nc + d] = run;
      run += cnt;
    }
  out->items = arena->array<uint64_t>(nv);
  out->rects = arena->array<TileRect>(nv);
  pool.parallel_for(cg.count, cg.grain(), [&, depth_key, rects, chunk_of, cur, cg, key_lo, nc, low](int64_t c0, int64_t c1, int) {
    uint64_t* __restrict dst = out->items;
    TileRect* __restrict dst_rects = out->rects;
    const uint32_t* __restrict keys = depth_key;
    const TileRect* __restrict rc = rects;
    const int32_t* __restrict cof = chunk_of;
    int64_t cc[257];  // this chunk's cursors, local: the chunks' rows share cache lines
    for (int64_t c = c0; c < c1; ++c) {
      std::copy(cur + c * nc, cur + (c + 1) * nc, cc);
      for (int64_t i = cg.begin(c), e = cg.end(c); i < e; ++i) {
        if (keys[i] == kNoDepthKey) continue;
        const uint32_t key = keys[i] - key_lo;
        const int64_t j = cc[cof[key >> low]]++;
        dst[j] = uint64_t(key) << 32 | uint64_t(i);
        dst_rects[j] = rc[i];
      }
    }
  });
}

// Summed-area table of a tiles_y × tiles_x grid of flags: entry
// (y, x) of the (tiles_y + 1) × (tiles_x + 1) result counts the nonzero flags
// in rows [0, y) and columns [0, x), so any rectangle's count is four reads.
static const int32_t* tile_sat(const uint32_t* flags, int64_t tiles_x, int64_t tiles_y, Arena* arena) {
  const int64_t sw = tiles_x + 1;
  int32_t* sat = arena->array<int32_t>(sw * (tiles_y + 1));
  std::fill(sat, sat + sw, 0);
  for (int64_t ty = 0; ty < tiles_y; ++ty) {
    int32_t run_row = 0;
    int32_t* srow = sat + (ty + 1) * sw;
    srow[0] = 0;
    for (int64_t tx = 0; tx < tiles_x; ++tx) {
      run_row += flags[ty * tiles_x + tx] != 0;
      srow[tx + 1] = srow[tx + 1 - sw] + run_row;
    }
  }
  return sat;
}

void depth_chunk(const DepthBuckets& bk, int chunk, const TileRect* rects, const CameraFrame& cam,
                 const uint32_t* live, Arena* arena, DepthOrder* out) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t b0 = bk.chunk_bucket[chunk], b1 = bk.chunk_bucket[chunk + 1];
  const int64_t i0 = bk.offsets[b0], m = bk.offsets[b1] - i0;
  const uint64_t* src = bk.items + i0;
  const TileRect* src_rects = bk.rects + i0;
  // Summed-area table of the tiles still blending (as bin_range's).
  const int64_t tiles_x = cam.tiles_x, sw = tiles_x + 1;
  const int32_t* sat = tile_sat(live, tiles_x, cam.tiles_y, arena);
  // Keep the Gaussians with a live tile in their rectangle, in index order,
  // their keys less the chunk's first key (a range of (b1 − b0) << low_bits).
  // The filter lists each range's kept positions from the range's start
  // without a branch (a rejected one is overwritten by the next), so the
  // compaction reads only the kept items (most of a late chunk's are not).
  const Chunks cv = chunks_for(m, 2048);
  int32_t* kept_at = arena->array<int32_t>(m);
  int64_t* cnt = arena->array<int64_t>(cv.count + 1);
  pool.parallel_for(cv.count, cv.grain(), [&, src_rects, sat, kept_at, cnt, cv, sw](int64_t c0, int64_t c1, int) {
    const TileRect* __restrict sr = src_rects;
    int32_t* __restrict at = kept_at;
    for (int64_t c = c0; c < c1; ++c) {
      int64_t j = cv.begin(c);
      for (int64_t k = cv.begin(c), e = cv.end(c); k < e; ++k) {
        const TileRect r = sr[k];
        const int32_t in = sat[r.y1 * sw + r.x1] - sat[r.y0 * sw + r.x1] - sat[r.y1 * sw + r.x0] + sat[r.y0 * sw + r.x0];
        at[j] = static_cast<int32_t>(k);
        j += in != 0;
      }
      cnt[c + 1] = j - cv.begin(c);
    }
  });
  cnt[0] = 0;
  for (int64_t c = 0; c < cv.count; ++c) cnt[c + 1] += cnt[c];
  const int64_t nk = cnt[cv.count];
  uint64_t* items = arena->array<uint64_t>(nk);
  uint64_t* tmp = arena->array<uint64_t>(nk);
  const uint64_t base = uint64_t(b0) << (32 + bk.low_bits);
  pool.parallel_for(cv.count, cv.grain(), [&, src, kept_at, cnt, cv, items, base](int64_t c0, int64_t c1, int) {
    const uint64_t* __restrict sp = src;
    uint64_t* __restrict dst = items;
    for (int64_t c = c0; c < c1; ++c) {
      const int32_t* __restrict at = kept_at + cv.begin(c);
      uint64_t* __restrict d = dst + cnt[c];
      for (int64_t t = 0, e = cnt[c + 1] - cnt[c]; t < e; ++t) d[t] = sp[at[t]] - base;
    }
  });
  const uint64_t span = uint64_t(b1 - b0) << bk.low_bits;  // keys in [0, span)
  const int key_bits = span > 1 ? 64 - __builtin_clzll(span - 1) : 0;
  const uint64_t* sorted = radix_sort(items, tmp, nk, key_bits, arena);
  // Depth order of the kept Gaussians: indices and rectangles.
  out->num_visible = nk;
  out->order = arena->array<int32_t>(nk);
  out->rects = reinterpret_cast<TileRect*>(sorted == items ? tmp : items);
  out->intersections = 0;
  const Chunks co = chunks_for(nk, 2048);
  pool.parallel_for(co.count, co.grain(), [&, sorted, rects, co](int64_t c0, int64_t c1, int) {
    const uint64_t* __restrict so = sorted;
    const TileRect* __restrict rc = rects;
    int32_t* __restrict ord = out->order;
    TileRect* __restrict dr = out->rects;
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t k = co.begin(c), e = co.end(c); k < e; ++k) {
        const uint32_t i = static_cast<uint32_t>(so[k]);
        ord[k] = static_cast<int32_t>(i);
        dr[k] = rc[i];
      }
  });
}

void bin_range(const DepthOrder& d, int64_t k0, int64_t k1, const CameraFrame& cam, const uint32_t* skip,
               Arena* arena, TileBins* bins) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t tiles = int64_t(cam.tiles_x) * cam.tiles_y;
  const Chunks cv = chunks_for(k1 - k0, 2048);
  bins->num_visible = k1 - k0;
  if (!bins->offsets) bins->offsets = arena->array<int64_t>(tiles + 1);
  // Counting sort by tile: per-chunk histograms, then each chunk scatters
  // from its own cursors. Cursor order (tile, chunk) keeps stability.
  int64_t* cursor = arena->array<int64_t>(cv.count * tiles);
  const int64_t tiles_x = cam.tiles_x;
  const TileRect* __restrict rc = d.rects + k0;
  // With a skip mask: summed-area table of the tiles taking entries, so a
  // rectangle with none of them (most of a late chunk's Gaussians, behind
  // saturated tiles) costs four reads instead of a walk over its tiles, and
  // one with all of them is walked without the per-tile test.
  const int64_t sw = tiles_x + 1;
  const int32_t* sat = skip ? tile_sat(skip, tiles_x, cam.tiles_y, arena) : nullptr;
  // 0: no tile of r takes entries; 1: every tile does; 2: some do.
  auto coverage = [sat, sw](const TileRect& r) {
    const int32_t in = sat[r.y1 * sw + r.x1] - sat[r.y0 * sw + r.x1] - sat[r.y1 * sw + r.x0] + sat[r.y0 * sw + r.x0];
    return in == 0 ? 0 : in == (r.x1 - r.x0) * (r.y1 - r.y0) ? 1 : 2;
  };
  // Counts per tile from a 2D difference grid: +1 at the rectangle's
  // corners (x0, y0) and (x1, y1), −1 at (x1, y0) and (x0, y1), then prefix
  // sums; four updates per Gaussian instead of one per tile. Every tile of a
  // rectangle is counted; tiles that take no entries (skip) ignore theirs.
  const int64_t dw = tiles_x + 1, dsize = dw * (cam.tiles_y + 1);
  int64_t* diff = arena->array<int64_t>(cv.count * dsize);
  pool.parallel_for(cv.count, cv.grain(), [&, diff, cursor, rc, cv, dsize, dw, tiles_x, tiles, coverage](int64_t c0, int64_t c1, int) {
    const int64_t tiles_y = cam.tiles_y;
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* __restrict d = diff + c * dsize;
      std::fill(d, d + dsize, 0);
      for (int64_t k = cv.begin(c), e = cv.end(c); k < e; ++k) {
        const TileRect r = rc[k];
        if (skip && coverage(r) == 0) continue;
        ++d[r.y0 * dw + r.x0];
        --d[r.y0 * dw + r.x1];
        --d[r.y1 * dw + r.x0];
        ++d[r.y1 * dw + r.x1];
      }
      int64_t* __restrict h = cursor + c * tiles;
      for (int64_t ty = 0; ty < tiles_y; ++ty) {
        int64_t run_row = 0;
        for (int64_t tx = 0; tx < tiles_x; ++tx) {
          run_row += d[ty * dw + tx];
          h[ty * tiles_x + tx] = run_row + (ty > 0 ? h[(ty - 1) * tiles_x + tx] : 0);
        }
      }
    }
  });
  int64_t run = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    bins->offsets[t] = run;
    const bool keep = !skip || skip[t] != 0;
    for (int64_t c = 0; c < cv.count; ++c) {
      const int64_t cnt = cursor[c * tiles + t];
      cursor[c * tiles + t] = keep ? run : -1;  // -1: the tile takes no entries (set below)
      if (keep) run += cnt;
    }
  }
  bins->offsets[tiles] = run;
  bins->intersections = run;
  // One slot past the lists per chunk: a tile that takes no entries has its
  // cursor there and never advances it, so the scatter stores without a
  // branch per tile.
  const int64_t need = run + cv.count;
  if (need > bins->capacity) {
    bins->list = arena->array<int32_t>(need);
    bins->capacity = need;
  }
  if (skip)
    for (int64_t c = 0; c < cv.count; ++c)
      for (int64_t t = 0; t < tiles; ++t)
        if (cursor[c * tiles + t] < 0) cursor[c * tiles + t] = run + c;
  pool.parallel_for(cv.count, cv.grain(), [&, run, rc, cursor, cv, tiles, tiles_x, coverage](int64_t c0, int64_t c1, int) {
    // Locals: through the closure's references GCC reloads them after every
    // store; the coverage case chosen once per Gaussian, not per tile row.
    const int32_t* __restrict ord = d.order + k0;
    int32_t* __restrict list = bins->list;
    const int64_t tx_count = tiles_x;
    const uint32_t* __restrict tile_skip = skip;
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* __restrict cur = cursor + c * tiles;
      for (int64_t k = cv.begin(c), e = cv.end(c); k < e; ++k) {
        const TileRect r = rc[k];
        const int32_t g = ord[k];
        const int cov = tile_skip ? coverage(r) : 1;
        const int64_t x0 = r.x0, x1 = r.x1, y0 = r.y0, y1 = r.y1;
        if (cov == 1) {
          for (int64_t ty = y0; ty < y1; ++ty) {
            int64_t* __restrict row = cur + ty * tx_count;
            for (int64_t tx = x0; tx < x1; ++tx) list[row[tx]++] = g;
          }
        } else if (cov == 2) {
          for (int64_t ty = y0; ty < y1; ++ty) {
            int64_t* __restrict row = cur + ty * tx_count;
            const uint32_t* __restrict take = tile_skip + ty * tx_count;
            for (int64_t tx = x0; tx < x1; ++tx) {
              const int64_t at = row[tx];
              list[at] = g;
              row[tx] = at + (take[tx] != 0);
            }
          }
        }
      }
    }
  });
}

}  // namespace tessera::cpu::splat
