// Compatibility for GCC < 12, force-included by CMakeLists.txt only for those
// compilers (the release build uses Debian bullseye's gcc 10, and Ubuntu
// 20.04/22.04 ship gcc 9-11); GCC 12 and later never see this file.
//
// __builtin_shufflevector(a, b, i...) arrived in GCC 12 (clang has had it
// long before). The SIMD kernels use it to take halves of a wide vector and
// to join two halves. Here it is a macro over a template that builds the same
// result lane by lane: a pure data movement, so every value is bit-identical;
// only the instruction selection may differ. An index of -1 (lane left
// undefined) takes lane 0 of a.
#pragma once
#if defined(__cplusplus) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 12 && \
    !__has_builtin(__builtin_shufflevector)
#include <type_traits>

namespace tessera_compat {
template <int... I, typename V>
inline __attribute__((always_inline)) auto shufflevector(V a, V b) {
  using E = std::remove_cv_t<std::remove_reference_t<decltype(a[0])>>;
  constexpr int n = int(sizeof(V) / sizeof(E));
  typedef E R __attribute__((vector_size(sizeof(E) * sizeof...(I))));
  const R r = {(I < 0 ? a[0] : I < n ? a[I < n ? (I < 0 ? 0 : I) : 0] : b[I >= n ? I - n : 0])...};
  return r;
}
}  // namespace tessera_compat

#define __builtin_shufflevector(a, b, ...) ::tessera_compat::shufflevector<__VA_ARGS__>((a), (b))
#endif
