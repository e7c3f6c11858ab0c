#!/usr/bin/env bash
# One run on a GPU machine (nvcc, CMake, no Node): build the CUDA backend and
# the native test programs, run the CPU tests, the CUDA tests and the CUDA
# benchmark, and print one summary table. Usage, from the repo root:
#   bash scripts/device-check.sh
# Logs go to $OUT (when set) and to build-device/logs. Exits non-zero if any
# build step or test fails. Budget: ~3-4 min build on 16 cores, ~1-2 min tests,
# ~1 min benchmark (attention, linear, splat fwd/bwd ms per frame at 100k/1M
# Gaussians and 720p/1080p, octree build of 1M points at depth 10).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD_DIR:-$ROOT/build-device}
JOBS=${JOBS:-$(nproc)}  # build parallelism (all cores on the GPU machine)
LOGS=${OUT:-$BUILD/logs}
mkdir -p "$BUILD" "$LOGS"
: >"$LOGS/build.log"
declare -a SUMMARY=()
FAILED=0
add() { SUMMARY+=("$(printf '%-34s | %-7s | %s' "$1" "$2" "$3")"); [[ "$2" == FAIL ]] && FAILED=1; return 0; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

# CUDA's default prefix, when nvcc is not on PATH (CMake's compiler check then finds it too).
command -v nvcc >/dev/null || { [[ -x /usr/local/cuda/bin/nvcc ]] && export PATH=/usr/local/cuda/bin:$PATH; }
echo "== nvidia-smi -L"; nvidia-smi -L || echo "(nvidia-smi failed)"
nvcc --version | tail -2; cmake --version | head -1

T=$(date +%s)
# CMake < 3.26 has no CUDA20 dialect flags for nvcc; naming them is harmless on newer CMake.
if cmake -S "$ROOT" -B "$BUILD" -DTESSERA_ADDON=OFF -DTESSERA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 \
    -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 >"$LOGS/configure.log" 2>&1; then
  add configure ok "$(elapsed $T)"
else
  add configure FAIL "see configure.log"; tail -30 "$LOGS/configure.log"
fi

build() {  # target
  local t=$(date +%s)
  echo "== build $1" >>"$LOGS/build.log"
  if cmake --build "$BUILD" -j"$JOBS" --target "$1" >"$BUILD/build-$1.log" 2>&1; then
    add "build $1" ok "$(elapsed $t), $(grep -c 'native/cuda.*warning' "$BUILD/build-$1.log") CUDA-backend warnings"
  else
    add "build $1" FAIL "see build.log"; grep -E "error" "$BUILD/build-$1.log" | head -20
  fi
  cat "$BUILD/build-$1.log" >>"$LOGS/build.log"
}
build tessera_cuda
build tessera_cuda_tests
build tessera_native_tests

# Runs a test program; one summary row per program plus one per failing case.
run_tests() {  # label, log, command...
  local label=$1 log=$2; shift 2
  local t=$(date +%s)
  if [[ ! -x "$1" ]]; then add "$label" FAIL "not built"; return; fi
  timeout 420 "$@" >"$LOGS/$log" 2>&1; local rc=$?
  local pass fail
  pass=$(grep -c '^ok ' "$LOGS/$log"); fail=$(grep -c '^FAIL ' "$LOGS/$log")
  if [[ $rc -eq 0 ]]; then add "$label" ok "$pass passed, $(elapsed $t)"
  elif [[ $rc -eq 77 ]]; then add "$label" FAIL "skipped (no device?): $(grep SKIP "$LOGS/$log" | head -1)"
  else add "$label" FAIL "rc=$rc, $pass passed, $fail failed, $(elapsed $t)"; fi
  while read -r name; do add "  $name" FAIL "$(grep -B12 "^FAIL $name\$" "$LOGS/$log" | grep -m1 'failed\|exception' | sed 's/^ *//' | cut -c1-160)"; done \
    < <(grep '^FAIL ' "$LOGS/$log" | awk '{print $2}')
  if [[ $rc -ne 0 ]]; then echo "== $label: last lines"; tail -25 "$LOGS/$log"; fi
}

run_tests "CPU native tests" cpu-tests.log "$BUILD/tessera_native_tests"
run_tests "CUDA tests" cuda-tests.log "$BUILD/tessera_cuda_tests"
head -3 "$LOGS/cuda-tests.log"

T=$(date +%s)
if [[ -x "$BUILD/tessera_cuda_tests" ]] && timeout 300 "$BUILD/tessera_cuda_tests" --bench >"$LOGS/cuda-bench.log" 2>&1; then
  add "CUDA benchmark" ok "$(elapsed $T)"
else
  add "CUDA benchmark" FAIL "rc=$?, see cuda-bench.log"; tail -15 "$LOGS/cuda-bench.log"
fi
while IFS='|' read -r _ name time rate note; do
  [[ "$name" =~ case ]] && continue
  add "  $(echo $name | cut -c1-32)" bench "$(echo $time) $(echo $rate) $(echo $note)"
done < <(grep '^BENCH' "$LOGS/cuda-bench.log" 2>/dev/null)

echo
echo "================ device-check summary ================"
printf '%-34s | %-7s | %s\n' "group" "result" "figures"
printf '%s\n' "${SUMMARY[@]}" | tee "$LOGS/summary.txt"
echo "logs: $LOGS"
exit $FAILED
