// tessera_cuda_tests: loads libtessera_cuda.so the way the addon does and
// runs the CUDA suites (or, with --bench, the benchmarks). With no CUDA
// device it prints why and exits 77, which CTest reports as "skipped"; a
// library that fails to load is a failure, not a skip.
#include <cstdlib>
#include <cstring>

#include "cuda_util.h"

int main(int argc, char** argv) {
#ifdef TESSERA_CUDA_LIB_PATH
  setenv("TESSERA_CUDA_LIB", TESSERA_CUDA_LIB_PATH, 0);
#endif
  const tessera::BackendStatus& st = tessera::backend_status();
  std::printf("CUDA library: %s\n", st.cuda_library.c_str());
  if (!st.cuda_built) {
    std::printf("FAIL: the CUDA library did not load: %s\n", st.cuda_error.c_str());
    return 1;
  }
  std::printf("build: %s\n", st.cuda_build_info.c_str());
  if (!st.cuda_loaded) {
    std::printf("FAIL: %s\n", st.cuda_error.c_str());
    return 1;
  }
  if (st.cuda_devices == 0) {
    std::printf("SKIP: no CUDA device: %s\n", st.cuda_error.empty() ? "none found" : st.cuda_error.c_str());
    return 77;
  }
  tessera::CudaDeviceProps p{};
  ct::call(ct::api().device_props, int32_t(0), &p);
  std::printf("device 0: %s, cc %d.%d, %d SMs, %.1f GiB (%.1f free), driver %d, runtime %d\n", p.name, p.cc_major,
              p.cc_minor, p.multiprocessors, p.total_memory / 1073741824.0, p.free_memory / 1073741824.0,
              p.driver_version, p.runtime_version);
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    try {
      return ct::run_bench();
    } catch (const std::exception& e) {
      std::printf("FAIL: benchmark threw: %s\n", e.what());
      return 1;
    }
  }
  return th::run_all(argc, argv);
}
