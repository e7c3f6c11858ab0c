// A minimal test harness for the native suites (no dependencies, so the same
// tests run on a GPU machine that has only a compiler and CMake).
//   TEST(name) { CHECK(cond) << "context"; CHECK_REL(out, ref, tol) ...; }
// The runner prints one line per failure and "N passed, N failed" at the end.
// Filter: TESSERA_TEST_FILTER=substring.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace th {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
struct Registrar {
  Registrar(const char* n, std::function<void()> f) { registry().push_back({n, std::move(f)}); }
};

inline int& failures_in_case() {
  static int f = 0;
  return f;
}

class Failure {
 public:
  Failure(const char* file, int line, const char* expr) { os_ << file << ":" << line << ": CHECK(" << expr << ") failed "; }
  ~Failure() {
    std::fprintf(stderr, "    %s\n", os_.str().c_str());
    ++failures_in_case();
  }
  template <class T> Failure& operator<<(const T& v) { os_ << v; return *this; }
 private:
  std::ostringstream os_;
};

struct Voidify {
  void operator&(const Failure&) {}
};

// ‖out − ref‖ / ‖ref‖ over n elements (ref in float64).
template <class T>
double rel_error(const T* out, const double* ref, size_t n) {
  long double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const long double d = static_cast<long double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<long double>(ref[i]) * ref[i];
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return static_cast<double>(std::sqrt(num / den));
}

// Fresh random inputs (never zeros): uniform in [-1, 1) from a seeded engine;
// the seed differs per run unless TESSERA_TEST_SEED is set, and is printed
// on failure so a failing case can be replayed.
inline uint64_t run_seed() {
  static uint64_t s = [] {
    if (const char* e = std::getenv("TESSERA_TEST_SEED")) return static_cast<uint64_t>(std::strtoull(e, nullptr, 10));
    return static_cast<uint64_t>(std::random_device{}()) ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  }();
  return s;
}

struct Rng {
  std::mt19937_64 eng;
  explicit Rng(uint64_t salt) : eng(run_seed() ^ (salt * 0x9e3779b97f4a7c15ull)) {}
  float uniform(float lo = -1.f, float hi = 1.f) {
    return std::uniform_real_distribution<float>(lo, hi)(eng);
  }
  void fill(float* p, size_t n, float lo = -1.f, float hi = 1.f) {
    for (size_t i = 0; i < n; ++i) p[i] = uniform(lo, hi);
  }
  int64_t randint(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(eng); }
};

inline int run_all(int argc, char** argv) {
  const char* filter = std::getenv("TESSERA_TEST_FILTER");
  if (argc > 1) filter = argv[1];
  int passed = 0, failed = 0;
  std::printf("seed %llu (replay with TESSERA_TEST_SEED)\n", static_cast<unsigned long long>(run_seed()));
  for (auto& c : registry()) {
    if (filter && std::string(c.name).find(filter) == std::string::npos) continue;
    failures_in_case() = 0;
    bool threw = false;
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "    uncaught exception: %s\n", e.what());
      threw = true;
    }
    if (failures_in_case() || threw) {
      ++failed;
      std::printf("FAIL %s\n", c.name);
    } else {
      ++passed;
      std::printf("ok   %s\n", c.name);
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace th

#define TH_CAT2(a, b) a##b
#define TH_CAT(a, b) TH_CAT2(a, b)
#define TEST(name)                                                          \
  static void TH_CAT(th_test_, name)();                                     \
  static ::th::Registrar TH_CAT(th_reg_, name)(#name, TH_CAT(th_test_, name)); \
  static void TH_CAT(th_test_, name)()

#define CHECK(cond) \
  (cond) ? (void)0 : ::th::Voidify() & ::th::Failure(__FILE__, __LINE__, #cond)

// Relative error check with the measured value in the message.
#define CHECK_REL(out, ref, n, tol)                                               \
  do {                                                                            \
    const double th_e = ::th::rel_error((out), (ref), (n));                       \
    CHECK(th_e <= (tol)) << "rel error " << th_e << " > " << (tol);              \
  } while (0)

// Expects `stmt` to throw tessera::Error with the given code.
#define CHECK_THROWS_CODE(stmt, code_enum)                                        \
  do {                                                                            \
    bool th_threw = false;                                                        \
    try {                                                                         \
      stmt;                                                                       \
    } catch (const ::tessera::Error& e) {                                         \
      th_threw = true;                                                            \
      CHECK(e.code() == ::tessera::Code::code_enum) << "got code "                 \
          << ::tessera::code_name(e.code()) << ": " << e.what();                  \
    }                                                                             \
    CHECK(th_threw) << "expected " #code_enum;                                    \
  } while (0)
