// Rotary tables (host, f32): angles are formed in double (3D: in f32, as
// OctGPT does) and cos/sin rounded once.
#include <cmath>
#include <string>

#include "tessera/attention.h"

namespace tessera {
namespace {
void check_table_args(bool ok, const std::string& what) { TESSERA_CHECK(ok, kInvalidArgument, what); }
}  // namespace

void rope_table_1d(int64_t num_positions, int32_t rotary_dim, double base, float* cos, float* sin) {
  check_table_args(num_positions >= 0 && rotary_dim >= 2 && rotary_dim % 2 == 0 && base > 0 && cos && sin,
                   "rope_table_1d: need positions >= 0, an even rotary_dim >= 2, base > 0 and output arrays");
  const int64_t half = rotary_dim / 2;
  for (int64_t j = 0; j < half; ++j) {
    const double w = std::pow(base, -2.0 * static_cast<double>(j) / rotary_dim);
    for (int64_t p = 0; p < num_positions; ++p) {
      cos[p * half + j] = static_cast<float>(std::cos(p * w));
      sin[p * half + j] = static_cast<float>(std::sin(p * w));
    }
  }
}

void rope_table_2d(int32_t grid, int32_t num_prefix, int32_t rotary_dim, double base, float* cos, float* sin) {
  check_table_args(grid >= 1 && num_prefix >= 0 && rotary_dim >= 4 && rotary_dim % 4 == 0 && base > 0 && cos && sin,
                   "rope_table_2d: need grid >= 1, num_prefix >= 0, rotary_dim a positive multiple of 4, base > 0 "
                   "and output arrays");
  const int64_t half = rotary_dim / 2, F = rotary_dim / 4;
  // LlamaGen's class-token rows are cos = sin = 0 (its cache prepends zeros),
  // which zeroes q and k there; matching it keeps checkpoints' outputs exact.
  for (int64_t i = 0; i < num_prefix * half; ++i) cos[i] = sin[i] = 0.f;
  for (int64_t r = 0; r < grid; ++r)
    for (int64_t c = 0; c < grid; ++c) {
      const int64_t row = num_prefix + r * grid + c;
      for (int64_t j = 0; j < half; ++j) {
        const int64_t k = j < F ? j : j - F;
        const double w = std::pow(base, -2.0 * static_cast<double>(k) / static_cast<double>(half));
        const double angle = static_cast<double>(j < F ? r : c) * w;
        cos[row * half + j] = static_cast<float>(std::cos(angle));
        sin[row * half + j] = static_cast<float>(std::sin(angle));
      }
    }
}

void rope_table_3d(int64_t num_positions, int32_t heads, int32_t rotary_dim, const float* xyz, const float* freqs,
                   float* cos, float* sin) {
  check_table_args(num_positions >= 0 && heads >= 1 && rotary_dim >= 2 && rotary_dim % 2 == 0 && xyz && freqs && cos &&
                       sin,
                   "rope_table_3d: need positions >= 0, heads >= 1, an even rotary_dim >= 2 and all arrays");
  const int64_t half = rotary_dim / 2;
  for (int64_t p = 0; p < num_positions; ++p)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < half; ++j) {
        const float* f = freqs + (h * half + j) * 3;
        const float angle = xyz[p * 3] * f[0] + xyz[p * 3 + 1] * f[1] + xyz[p * 3 + 2] * f[2];
        cos[(p * heads + h) * half + j] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin[(p * heads + h) * half + j] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
}

}  // namespace tessera
