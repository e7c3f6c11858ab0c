#!/usr/bin/env bash
# One run on a GPU machine (nvcc, CMake, a C++ compiler; no Node): build the
# CUDA backend and the native test programs, run the CUDA tests, the CUDA
# benchmark and the CPU tests, and print one summary table. Usage, from the
# repo root:
#   bash scripts/device-check.sh
# Logs go to $OUT (when set) and to build-device/logs; the summary table is
# rewritten to summary.txt after every step, so a run cut short still leaves
# what it found. Exits non-zero if any step fails.
#
# Time: every step runs under `timeout`, capped by what is left of one
# overall budget (BUDGET_S, default 540 s: a device command is killed at
# 600 s), and a step with too little time left is reported as FAIL, never
# silently dropped. Expected on 16 cores: configure ~15 s, builds ~2-4 min,
# CUDA tests ~1 min, benchmark ~1 min (attention, linear, splat fwd/bwd at
# 100k/1M Gaussians and 720p/1080p, octree build of 1M points at depth 10),
# CPU tests ~30 s. The CUDA steps come before the CPU tests, which also run
# on machines without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
BUDGET_S=${BUDGET_S:-540}
BUILD=${BUILD_DIR:-$ROOT/build-device}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}  # build parallelism (all cores on the GPU machine)
LOGS=${OUT:-$BUILD/logs}
mkdir -p "$BUILD" "$LOGS"
: >"$LOGS/build.log"
declare -a SUMMARY=()
declare -A BUILT=()  # target -> 1 once built in this run (a stale binary from an earlier run is never tested)
FAILED=0

write_summary() {
  {
    printf '%-34s | %-7s | %s\n' "group" "result" "figures"
    printf '%s\n' "${SUMMARY[@]}"
  } >"$LOGS/summary.txt"
}
add() {
  SUMMARY+=("$(printf '%-34s | %-7s | %s' "$1" "$2" "$3")")
  [[ "$2" == FAIL ]] && FAILED=1
  write_summary
  return 0
}
since() { echo "$(($(date +%s) - $1))s"; }
# Seconds a step may take: its cap, or what is left of the budget (minus 10 s
# for the summary), whichever is smaller; 0 when fewer than `min` are left.
allow() {  # cap min
  local left=$((BUDGET_S - ($(date +%s) - START) - 10))
  ((left > $1)) && left=$1
  ((left < $2)) && left=0
  echo "$left"
}
# timeout with a hard kill 5 s after the TERM; rc 124 = timed out.
run_limited() {  # seconds command...
  local s=$1
  shift
  timeout -k 5 "$s" "$@"
}
rc_text() {  # rc seconds
  case $1 in
    124 | 137) echo "timed out after $2 s" ;;
    *) if (($1 > 128)); then echo "killed by signal $(($1 - 128))"; else echo "rc=$1"; fi ;;
  esac
}

# CUDA's default prefix, when nvcc is not on PATH (CMake's compiler check then finds it too).
command -v nvcc >/dev/null || { [[ -x /usr/local/cuda/bin/nvcc ]] && export PATH=/usr/local/cuda/bin:$PATH; }
missing=""
for tool in cmake nvcc c++ timeout; do command -v "$tool" >/dev/null || missing+=" $tool"; done
if [[ -n "$missing" ]]; then add tools FAIL "not found:$missing"; else add tools ok "cmake, nvcc, c++, timeout"; fi
echo "== nvidia-smi -L"
run_limited 20 nvidia-smi -L || echo "(nvidia-smi failed or is absent)"
run_limited 20 nvcc --version | tail -2
run_limited 20 cmake --version | head -1

T=$(date +%s)
CONFIGURED=0
t=$(allow 120 20)
if ((t == 0)); then
  add configure FAIL "no time left"
# CMake < 3.26 has no CUDA20 dialect flags for nvcc; naming them is harmless on newer CMake.
elif run_limited "$t" cmake -S "$ROOT" -B "$BUILD" -DTESSERA_ADDON=OFF -DTESSERA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 \
  -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 >"$LOGS/configure.log" 2>&1; then
  add configure ok "$(since $T)"
  CONFIGURED=1
else
  add configure FAIL "$(rc_text $? "$t"), see configure.log"
  tail -30 "$LOGS/configure.log"
fi

build() {  # target
  local T t rc
  T=$(date +%s)
  t=$(allow 330 30)
  if ((CONFIGURED == 0)); then add "build $1" FAIL "not configured"; return; fi
  if ((t == 0)); then add "build $1" FAIL "no time left"; return; fi
  echo "== build $1" >>"$LOGS/build.log"
  run_limited "$t" cmake --build "$BUILD" -j"$JOBS" --target "$1" >"$BUILD/build-$1.log" 2>&1
  rc=$?
  if ((rc == 0)); then
    BUILT[$1]=1
    add "build $1" ok "$(since $T), $(grep -c 'native/cuda.*warning' "$BUILD/build-$1.log") CUDA-backend warnings"
    grep 'native/cuda.*warning' "$BUILD/build-$1.log" | head -5
  else
    add "build $1" FAIL "$(rc_text $rc "$t") after $(since $T), see build.log"
    grep -E "error" "$BUILD/build-$1.log" | head -20
  fi
  cat "$BUILD/build-$1.log" >>"$LOGS/build.log"
}
build tessera_cuda
build tessera_cuda_tests
build tessera_native_tests

# Runs a test program; one summary row per program plus one per failing case
# (with the first failure message of that case).
run_tests() {  # label, log, cap, target, args...
  local label=$1 log=$2 cap=$3 target=$4
  shift 4
  local T t rc pass fail seed
  T=$(date +%s)
  t=$(allow "$cap" 20)
  if [[ -z "${BUILT[$target]:-}" ]]; then add "$label" FAIL "not built"; return; fi
  if ((t == 0)); then add "$label" FAIL "no time left"; return; fi
  run_limited "$t" "$BUILD/$target" "$@" >"$LOGS/$log" 2>&1
  rc=$?
  pass=$(grep -c '^ok ' "$LOGS/$log")
  fail=$(grep -c '^FAIL ' "$LOGS/$log")
  seed=$(grep -m1 -o '^seed [0-9]*' "$LOGS/$log")  # replay with TESSERA_TEST_SEED
  if ((rc == 0)); then
    add "$label" ok "$pass passed, $(since $T), $seed"
  elif ((rc == 77)); then
    add "$label" FAIL "skipped (no device?): $(grep -m1 SKIP "$LOGS/$log")"
  else
    add "$label" FAIL "$(rc_text $rc "$t"), $pass passed, $fail failed, $(since $T), $seed"
    if ((rc != 1)); then  # died or timed out: say after which case
      add "  stopped after" FAIL "$(grep -E '^(ok|FAIL) ' "$LOGS/$log" | tail -1 | cut -c1-120)"
    elif ((fail == 0)); then  # refused to start (e.g. the CUDA library did not load)
      add "  output" FAIL "$(grep -m1 -E 'FAIL|rror' "$LOGS/$log" | cut -c1-160)"
    fi
  fi
  while IFS=$'\t' read -r name msg; do add "  $name" FAIL "$msg"; done < <(awk '
    /^(ok|FAIL) / { if ($1 == "FAIL") printf "%s\t%s\n", $2, substr(first, 1, 160); first = ""; next }
    first == "" && /failed|exception/ { first = $0; sub(/^ +/, "", first) }' "$LOGS/$log")
  if ((rc != 0)); then
    echo "== $label: last lines"
    tail -25 "$LOGS/$log"
  fi
}

run_tests "CUDA tests" cuda-tests.log 240 tessera_cuda_tests
head -3 "$LOGS/cuda-tests.log" 2>/dev/null

T=$(date +%s)
t=$(allow 150 30)
if [[ -z "${BUILT[tessera_cuda_tests]:-}" ]]; then
  add "CUDA benchmark" FAIL "not built"
elif ((t == 0)); then
  add "CUDA benchmark" FAIL "no time left"
else
  run_limited "$t" "$BUILD/tessera_cuda_tests" --bench >"$LOGS/cuda-bench.log" 2>&1
  rc=$?
  if ((rc == 0)); then
    add "CUDA benchmark" ok "$(since $T)"
  else
    add "CUDA benchmark" FAIL "$(rc_text $rc "$t"), see cuda-bench.log"
    tail -15 "$LOGS/cuda-bench.log"
  fi
  while IFS='|' read -r _ name time rate note; do
    [[ "$name" =~ case ]] && continue
    add "  $(echo $name | cut -c1-32)" bench "$(echo $time) $(echo $rate) $(echo $note)"
  done < <(grep '^BENCH' "$LOGS/cuda-bench.log" 2>/dev/null)
fi

run_tests "CPU native tests" cpu-tests.log 180 tessera_native_tests

add total "$([[ $FAILED == 0 ]] && echo ok || echo FAIL)" "$(since $START) of a ${BUDGET_S} s budget"
echo
echo "================ device-check summary ================"
cat "$LOGS/summary.txt"
echo "logs: $LOGS"
exit $FAILED
