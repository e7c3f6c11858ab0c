#!/usr/bin/env bash
# Release build of the native binaries against an old glibc (issue 10), with
# no Docker: a Debian bullseye root (glibc 2.31, gcc 10, libstdc++ GLIBCXX_3.4.28)
# made with debootstrap, in which tessera.node and libtessera_cuda.so are
# compiled and linked by bullseye's own gcc/g++/ld, with TESSERA_GLIBC_COMPAT=ON
# (cmake/glibc_compat.h binds exp/exp2/log/log2/pow to their GLIBC_2.2.5
# versions, so nothing needs glibc 2.29+: the floor is glibc 2.28). Then it
#   - runs the native tests, a Node load of the addon and `tessera generate`
#     INSIDE the root
#     (proof that the binaries run on glibc 2.31),
#   - checks the binaries on the host (scripts/release-check-binaries.mjs:
#     ISA flags, AVX code only in per-ISA files, and the GLIBC_/GLIBCXX_/CXXABI_
#     versions needed; it FAILS above --max-glibc/--max-glibcxx/--max-cxxabi),
#   - stages them into npm/*/ (scripts/release-stage.mjs).
#
# What runs inside the root and where it comes from:
#   gcc 10, g++ 10, binutils, ninja, make, python3  bullseye packages (deb.debian.org)
#   node            the host's node binary, copied in (node 20 needs glibc >= 2.28)
#   cmake           the host's cmake (>= 3.20; bullseye has only 3.18), copied in
#                   with a private copy of the host libraries it links, glibc
#                   included (patchelf sets its interpreter and rpath). It only
#                   drives the build: every compile and link runs bullseye's tools.
#   nvcc            the host's /usr/local/cuda, bind-mounted read-only; nvcc uses
#                   bullseye's g++ 10 as its host compiler (CUDA 13 accepts gcc <= 15)
#                   and bullseye's ld links the library, cudart static included.
#   node_modules    the checkout's (cmake-js, node-addon-api, node-api-headers),
#                   so nothing is downloaded during the build.
# The sources are a committed revision (--rev, default HEAD), unpacked with
# `git archive` into <out>-src, so edits in the working tree do not leak into a
# release binary (--worktree builds the working tree as it is instead). The
# repository is bind-mounted at its own path inside the root, so build files
# name the same paths inside and outside.
#
# Network: only when the root is first made (debootstrap from deb.debian.org,
# about 100 MB of packages). The root is cached and reused; its recipe is in
# <root>/.tessera-recipe, and a different recipe makes a new root.
#
# Usage (as root; needs debootstrap and patchelf on the host, installed with
# apt-get when missing):
#   bash scripts/release-build.sh [options]
#     --root DIR        where the bullseye root lives (env TESSERA_RELEASE_ROOT,
#                       default /work/release-root); the root is DIR/bullseye-amd64
#     --out DIR         build folder, relative to the repository (default build-release)
#     --rev REV         the commit to build (default HEAD)
#     --worktree        build the working tree as it is, uncommitted edits included
#     --cuda on|off|auto  build libtessera_cuda.so (default auto: if /usr/local/cuda/bin/nvcc exists)
#     --cuda-archs LIST CMAKE_CUDA_ARCHITECTURES (default: npm/linux-x64-cuda/package.json
#                       config.cudaArchitectures)
#     --jobs N          parallel compile jobs (default 2)
#     --incremental     keep the build folder (default: a clean build)
#     --no-tests        skip the native tests and the in-root Node run
#     --no-stage        do not copy the binaries into npm/*/
#     --max-glibc V     glibc floor to enforce (default 2.28: RHEL 8, Debian 10,
#                       manylinux_2_28, and Node 20's own floor); the check FAILS
#                       when a binary needs a newer GLIBC_ version
set -euo pipefail
{ # the whole script is read before it runs, so editing it mid-run is harmless
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

root_base=${TESSERA_RELEASE_ROOT:-/work/release-root}
out=build-release
rev=HEAD
worktree=0
cuda=auto
archs=
jobs=2
incremental=0
tests=1
stage=1
max_glibc=2.28
# The libstdc++ of gcc 8 (RHEL 8, Debian 10: the glibc 2.28 systems) defines up to these.
max_glibcxx=3.4.25
max_cxxabi=1.3.11
while [[ $# -gt 0 ]]; do
  case $1 in
    --root) root_base=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rev) rev=$2; shift 2 ;;
    --worktree) worktree=1; shift ;;
    --cuda) cuda=$2; shift 2 ;;
    --cuda-archs) archs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --incremental) incremental=1; shift ;;
    --no-tests) tests=0; shift ;;
    --no-stage) stage=0; shift ;;
    --max-glibc) max_glibc=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "release-build: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $out != /* && $out != *..* ]] || { echo "release-build: --out must be a folder inside the repository" >&2; exit 2; }
[[ $out != build ]] || { echo "release-build: --out build is the dev build folder; use another" >&2; exit 2; }

t0=$(date +%s)
step() { echo "== release-build: $* ($(( $(date +%s) - t0 )) s)"; }
die() { echo "release-build: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot and bind mounts)"
for tool in debootstrap patchelf; do
  if ! command -v "$tool" >/dev/null; then
    step "installing $tool on the host (apt-get)"
    apt-get install -y "$tool" >/dev/null || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }
  fi
done
for tool in node cmake objdump nm strip; do command -v "$tool" >/dev/null || die "$tool is not on PATH"; done
[[ -d node_modules/cmake-js && -d node_modules/node-addon-api && -d node_modules/node-api-headers ]] \
  || die "node_modules lacks cmake-js, node-addon-api or node-api-headers: run npm install first"

case $cuda in
  on|ON) cuda=ON ;;
  off|OFF) cuda=OFF ;;
  auto|AUTO) if [[ -x /usr/local/cuda/bin/nvcc ]]; then cuda=ON; else cuda=OFF; fi ;;
  *) die "--cuda must be on, off or auto" ;;
esac
if [[ $cuda == ON ]]; then
  [[ -x /usr/local/cuda/bin/nvcc ]] || die "--cuda on but /usr/local/cuda/bin/nvcc is missing"
  cuda_dir=$(readlink -f /usr/local/cuda)
  [[ -n $archs ]] || archs=$(node -p "require('./npm/linux-x64-cuda/package.json').config.cudaArchitectures")
fi

# ---- 1. the bullseye root ---------------------------------------------------
suite=bullseye
mirror=http://deb.debian.org/debian
packages=g++,make,ninja-build,python3
chroot_dir=$root_base/$suite-amd64
recipe="suite=$suite mirror=$mirror variant=minbase include=$packages"
if [[ ! -f $chroot_dir/.tessera-recipe || $(cat "$chroot_dir/.tessera-recipe") != "$recipe" ]]; then
  step "making the $suite root in $chroot_dir (debootstrap, network: $mirror)"
  mkdir -p "$root_base"
  rm -rf "$chroot_dir.tmp"
  debootstrap --variant=minbase --include="$packages" "$suite" "$chroot_dir.tmp" "$mirror" \
    > "$root_base/debootstrap-$suite.log" 2>&1 || die "debootstrap failed, see $root_base/debootstrap-$suite.log"
  echo "$recipe" > "$chroot_dir.tmp/.tessera-recipe"
  rm -rf "$chroot_dir"
  mv "$chroot_dir.tmp" "$chroot_dir"
else
  step "reusing the $suite root in $chroot_dir"
fi

# ---- 2. host tools copied in (node, cmake) ----------------------------------
copy_if_changed() { cmp -s "$1" "$2" 2>/dev/null || { mkdir -p "$(dirname "$2")"; cp -L "$1" "$2"; }; }
copy_if_changed "$(readlink -f "$(command -v node)")" "$chroot_dir/opt/host-node/bin/node"

cmake_bin=$(readlink -f "$(command -v cmake)")
cmake_ver=$(cmake --version | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')
cmake_share=$(dirname "$(dirname "$cmake_bin")")/share/cmake-$cmake_ver
[[ -d $cmake_share ]] || die "cannot find cmake's modules at $cmake_share"
hc=$chroot_dir/opt/host-cmake
if [[ ! -f $hc/stamp || $(cat "$hc/stamp") != "$(sha256sum "$cmake_bin")" ]]; then
  step "copying the host's cmake $cmake_ver into the root (with its own glibc)"
  rm -rf "$hc"
  mkdir -p "$hc/bin" "$hc/lib" "$hc/share"
  cp "$cmake_bin" "$hc/bin/cmake"
  cp -r "$cmake_share" "$hc/share/"
  interp=
  while read -r lib; do
    cp -L "$lib" "$hc/lib/"
    [[ $lib == *ld-linux* ]] && interp=$(basename "$lib")
  done < <(ldd "$cmake_bin" | grep -o '/[^ ]*\.so[^ ]*')
  [[ -n $interp ]] || die "ldd did not show cmake's interpreter"
  # DT_RPATH (not RUNPATH) so that it applies to the libraries' own dependencies too.
  patchelf --set-interpreter "/opt/host-cmake/lib/$interp" --force-rpath --set-rpath /opt/host-cmake/lib "$hc/bin/cmake"
  sha256sum "$cmake_bin" > "$hc/stamp"
fi

# ---- 3. build inside the root -----------------------------------------------
[[ $incremental == 1 ]] || rm -rf "$repo/$out"
if [[ $worktree == 1 ]]; then
  src=$repo
  src_desc="the working tree (uncommitted edits included)"
else
  commit=$(git rev-parse --verify "$rev^{commit}") || die "no commit $rev"
  src=$repo/$out-src
  src_desc="commit $(git log -1 --format='%h %cs' "$commit")"
  dirty=$(git status --porcelain --untracked-files=no -- native bindings CMakeLists.txt cmake 2>/dev/null | wc -l)
  [[ $dirty == 0 ]] || echo "release-build: note: $dirty uncommitted change(s) under native/, bindings/ or CMakeLists.txt are NOT in this build (--worktree builds them)"
  # Unpacked again only when the built paths differ from the last unpack (git
  # archive stamps every file with the commit time, so --incremental then
  # recompiles everything).
  paths=(CMakeLists.txt native bindings $(git ls-tree --name-only "$commit" cmake test/native package.json))
  key=$(git ls-tree "$commit" -- "${paths[@]}" | sha256sum | cut -c1-16)
  if [[ ! -f $src/.tessera-tree || $(cat "$src/.tessera-tree") != "$key" ]]; then
    rm -rf "$src" && mkdir -p "$src"
    git archive "$commit" "${paths[@]}" | tar -x -C "$src"
    echo "$key" > "$src/.tessera-tree"
  fi
  ln -sfn "$repo/node_modules" "$src/node_modules"
fi
mkdir -p "$chroot_dir$repo" "$chroot_dir/usr/local/cuda"
defines=(--CDTESSERA_BUILD_TESTS=ON --CDCMAKE_BUILD_TYPE=Release --CDTESSERA_CUDA=$cuda --CDTESSERA_GLIBC_COMPAT=ON)
if [[ $cuda == ON ]]; then
  defines+=("--CDCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc" "--CDCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++"
            "--CDCMAKE_CUDA_ARCHITECTURES=$archs")
fi
inner=$(cat <<EOF
set -euo pipefail
export PATH=/opt/host-cmake/bin:/opt/host-node/bin:/usr/sbin:/usr/bin:/sbin:/bin$( [[ $cuda == ON ]] && echo :/usr/local/cuda/bin || true) HOME=/root LANG=C.UTF-8
unset TESSERA_ADDON_PATH TESSERA_CUDA_LIB TESSERA_BACKEND NODE_EXTRA_CA_CERTS
cd "$src"
echo "root:  \$(. /etc/os-release; echo \$PRETTY_NAME), \$(ldd --version | head -1), \$(g++ --version | head -1)"
echo "tools: node \$(node --version), \$(cmake --version | head -1), ninja \$(ninja --version)$( [[ $cuda == ON ]] && echo ", \$(/usr/local/cuda/bin/nvcc --version | tail -1)" || true)"
# configure, then build: a kept (--incremental) build folder takes the options too
TESSERA_CUDA=$cuda node node_modules/cmake-js/bin/cmake-js configure --out "$repo/$out" -G Ninja ${defines[*]@Q}
TESSERA_CUDA=$cuda node node_modules/cmake-js/bin/cmake-js build --out "$repo/$out" -G Ninja -p $jobs ${defines[*]@Q}
EOF
)
if [[ $tests == 1 ]]; then
  inner+=$(cat <<EOF

echo "== inside the root: native tests"
"$repo/$out/tessera_native_tests" 2>&1 | tail -3
echo "== inside the root: node loads the addon"
node -e "const a = require('$repo/$out/Release/tessera.node'); const s = a.backendStatus(); console.log('loaded', '$out/Release/tessera.node', 'isa', a.cpuInfo().isa, 'cudaBuilt', s.cudaBuilt, 'cudaError', JSON.stringify(s.cudaError))"
if [[ -f "$repo/dist/lib/cli/main.js" ]]; then
  echo "== inside the root: tessera info and generate (the checkout's dist/) with this addon"
  cd "$repo"
  export TESSERA_ADDON_PATH="$repo/$out/Release/tessera.node"
  node dist/lib/cli/main.js info | head -2
  node dist/lib/cli/main.js generate --out /tmp/tessera-release-build.png
else
  echo "== inside the root: dist/ not built, tessera generate skipped"
fi
EOF
)
fi
step "building $src_desc in the root ($(basename "$chroot_dir"), cuda $cuda${archs:+, archs $archs}, -j$jobs)"
unshare --mount --propagation private -- bash -c '
  set -euo pipefail
  c=$1 repo=$2 cuda_dir=$3 inner=$4
  mount -t proc proc "$c/proc"
  mount --bind /dev "$c/dev"
  mount --bind "$repo" "$c$repo"
  if [[ -n $cuda_dir ]]; then mount --bind "$cuda_dir" "$c/usr/local/cuda"; mount -o remount,bind,ro "$c/usr/local/cuda"; fi
  chroot "$c" /bin/bash -c "$inner"
' _ "$chroot_dir" "$repo" "${cuda_dir:-}" "$inner"

# ---- 4. check and stage on the host -----------------------------------------
step "checking the binaries (target: GLIBC_$max_glibc, GLIBCXX_$max_glibcxx, CXXABI_$max_cxxabi)"
node scripts/release-check-binaries.mjs --build-dir "$out" \
  --max-glibc "$max_glibc" --max-glibcxx "$max_glibcxx" --max-cxxabi "$max_cxxabi"
if [[ $stage == 1 ]]; then
  [[ -f dist/lib/native.js ]] || { step "building the TypeScript (release-stage reads dist/lib/native.js)"; npx tsc -p tsconfig.json; }
  step "staging into npm/*/"
  node scripts/release-stage.mjs --build-dir "$repo/$out"
fi
step "done: $out/Release/tessera.node${cuda_dir:+ and $out/Release/libtessera_cuda.so}"
exit 0
}
