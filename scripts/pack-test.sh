#!/usr/bin/env bash
# Proof that Tessera installs like a published package (issue 10): packs the
# main package and the platform packages, installs the tarballs into an empty
# project with the npm cache OFFLINE and no compiler on PATH, then runs
# `tessera info`, a VAR generation on the tiny fixture checkpoints, a splat
# render and a LlamaGen generation (the embedded tiny model, plain and SJD)
# through the package API there, checks the PNGs and reports the package sizes.
#
# Network: only while priming the npm cache, and only to the npm registry. The
# third-party runtime dependencies (sharp, fastify, cmake-js, ...) are put in
# $TESSERA_PACK_CACHE by an install of the same tarballs with --prefer-offline
# (a no-op once the cache is warm); the measured install then runs with
# `npm install --offline --cache $TESSERA_PACK_CACHE`, as root inside
# `unshare --net` (no network interface at all) for it and every run after. The @tessera/* platform
# packages are not on the registry yet, so their tarballs are passed to the same
# `npm install` next to the main tarball; npm then satisfies the main package's
# optionalDependencies with them, as it would with registry copies.
#
# Env: TESSERA_PACK_CACHE (default ~/.cache/tessera-pack-test/npm),
#      PACK_TEST_BUILD=0 to reuse build/Release without invoking the build,
#      PACK_TEST_BUILD_DIR=build-release to check, stage and test the binaries
#        that scripts/release-build.sh made there (no build; implies PACK_TEST_BUILD=0;
#        the check then FAILS above GLIBC 2.28, GLIBCXX 3.4.25, CXXABI 1.3.11),
#      PACK_TEST_REV=HEAD to pack the main package from that commit instead of
#        the working tree (the binaries still come from the build folder),
#      PACK_TEST_SOURCE=1 to also install the main tarball alone and let it build
#        from source (the fallback; needs cmake and g++, minutes),
#      PACK_TEST_KEEP=1 to keep the temp project.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${TESSERA_PACK_CACHE:-$HOME/.cache/tessera-pack-test/npm}
work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pack-XXXXXX")
if [[ "${PACK_TEST_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; else echo "pack-test: keeping $work"; fi
t0=$(date +%s)
step() { echo "== pack-test: $* ($(( $(date +%s) - t0 )) s)"; }

build_dir=${PACK_TEST_BUILD_DIR:-build}
step "build the addon (incremental) and the TypeScript"
if [[ "${PACK_TEST_BUILD:-1}" != 0 && $build_dir == build ]]; then
  if [[ -f build/build.ninja || -f build/Makefile ]]; then
    targets=(--target tessera_addon)
    [[ -f build/Release/libtessera_cuda.so ]] && targets+=(--target tessera_cuda)
    cmake --build build "${targets[@]}" -- -j2 >/dev/null
  else
    npm run build:native >/dev/null
  fi
fi
npx tsc -p tsconfig.json

step "check the binaries (ISA flags, AVX only in per-ISA code, glibc floor)"
# A release build (PACK_TEST_BUILD_DIR) must meet the published floor, the
# limits scripts/release-build.sh enforces; the dev build/ is only reported.
limits=()
[[ $build_dir == build ]] || limits=(--max-glibc 2.28 --max-glibcxx 3.4.25 --max-cxxabi 1.3.11)
node scripts/release-check-binaries.mjs --build-dir "$build_dir" "${limits[@]}"
node scripts/release-version.mjs --check

step "stage the binaries into npm/*/ and pack"
node scripts/release-stage.mjs --build-dir "$build_dir"
mkdir -p "$work/tarballs"
pack() { (cd "$1" && npm pack --ignore-scripts --json --pack-destination "$work/tarballs" 2>/dev/null); }
# The main package: the working tree as it is, or with PACK_TEST_REV a
# committed revision (git archive, then tsc there), so that edits in progress
# stay out of a release proof.
if [[ -n ${PACK_TEST_REV:-} ]]; then
  commit=$(git rev-parse --verify "$PACK_TEST_REV^{commit}")
  echo "pack-test: packing the main package from commit $(git log -1 --format='%h %cs' "$commit")"
  tree="$work/tree"
  mkdir -p "$tree"
  git archive "$commit" | tar -x -C "$tree"
  ln -s "$root/node_modules" "$tree/node_modules"
  (cd "$tree" && npx tsc -p tsconfig.json)
  pack "$tree" > "$work/pack-main.json"
else
  dirty=$(git status --porcelain -- lib native bindings CMakeLists.txt cmake scripts/install.mjs models package.json 2>/dev/null | wc -l)
  [[ $dirty == 0 ]] || echo "pack-test: note: the main tarball packs the working tree, with $dirty uncommitted change(s) under its paths (PACK_TEST_REV=HEAD packs the commit)"
  pack . > "$work/pack-main.json"
fi
pkgs=(linux-x64)
[[ -f npm/linux-x64-cuda/libtessera_cuda.so ]] && pkgs+=(linux-x64-cuda)
for p in "${pkgs[@]}"; do pack "npm/$p" > "$work/pack-$p.json"; done
tarballs=("$work"/tarballs/*.tgz)

step "prime the npm cache for the third-party dependencies (registry only; $cache)"
mkdir -p "$work/prime" "$cache"
echo '{"name":"prime","version":"1.0.0","private":true}' > "$work/prime/package.json"
(cd "$work/prime" && npm install --prefer-offline --cache "$cache" --ignore-scripts --no-audit --no-fund \
  --loglevel=error "${tarballs[@]}" >/dev/null)

# Offline means offline: as root, the install and every run below happen in a
# new network namespace with no interface up (unshare --net), so any attempt
# to reach the network fails; elsewhere only npm's --offline vouches for it.
nonet=()
if [[ $(id -u) == 0 ]] && unshare --net -- true 2>/dev/null; then
  nonet=(unshare --net --)
  net_note="no network (unshare --net) and npm --offline"
else
  net_note="npm --offline (not root: the network namespace is not cut)"
fi

step "install with $net_note, no compiler on PATH"
bin="$work/bin"
mkdir -p "$bin"
for tool in node npm npx sh; do ln -s "$(command -v $tool)" "$bin/$tool"; done
for tool in cc c++ gcc g++ clang++ cmake make ninja; do
  if PATH="$bin" command -v "$tool" >/dev/null 2>&1; then echo "pack-test: $tool is still on PATH" >&2; exit 1; fi
done
app="$work/app"
mkdir -p "$app"
echo '{"name":"app","version":"1.0.0","private":true,"type":"module"}' > "$app/package.json"
(cd "$app" && "${nonet[@]}" env -u TESSERA_ADDON_PATH -u TESSERA_CUDA_LIB PATH="$bin" \
  npm install --offline --cache "$cache" --no-audit --no-fund --foreground-scripts "${tarballs[@]}" 2>&1 | grep -v '^npm warn' | sed 's/^/  /')
[[ -f "$app/node_modules/tessera/package.json" ]] || { echo "pack-test: tessera was not installed" >&2; exit 1; }
[[ ! -e "$app/node_modules/tessera/build" ]] || { echo "pack-test: the install built from source" >&2; exit 1; }

run() { (cd "$app" && "${nonet[@]}" env -u TESSERA_ADDON_PATH -u TESSERA_CUDA_LIB -u TESSERA_BACKEND PATH="$bin" "$@"); }

step "npx tessera info"
run npx tessera info | tee "$work/info.txt" | sed 's/^/  /'
grep -q "node_modules/@tessera/linux-x64/tessera.node (@tessera/linux-x64)" "$work/info.txt" \
  || { echo "pack-test: the addon did not come from @tessera/linux-x64" >&2; exit 1; }

step "generate with the tiny VAR fixtures"
cp test/fixtures/var/vae.pth test/fixtures/var/var.pth "$app/"
run npx tessera generate --tokenizer vae.pth --weights var.pth --class 1 --seed 7 --out gen.png | sed 's/^/  /'

step "render a synthetic splat scene through the package API"
cat > "$app/render.mjs" <<'EOF'
import sharp from 'sharp';
import { splat } from 'tessera';
const scene = splat.syntheticScene({ count: 400, seed: 3 });
const [camera] = splat.orbitCameras(1, 3, 64);
const { views } = await splat.render(scene, camera);
const { rgb, width, height } = views[0];
const px = new Uint8Array(width * height * 3);
rgb.data.forEach((v, i) => { px[i] = Math.min(255, Math.max(0, Math.floor(v * 255 + 0.5))); });
await sharp(px, { raw: { width, height, channels: 3 } }).png().toFile('render.png');
console.log(`rendered ${width}x${height}, ${scene.count} Gaussians`);
EOF
run node render.mjs | sed 's/^/  /'

step "generate with the embedded tiny LlamaGen through the package API (SJD, greedy = plain)"
cat > "$app/llamagen.mjs" <<'EOF'
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadLlamaGen, generateLlamaGen, generateSjd, writeImageTensor } from 'tessera';
const dir = join(dirname(createRequire(import.meta.url).resolve('tessera/package.json')), 'models', 'tiny-llamagen');
const p = await loadLlamaGen(join(dir, 'vq.pt'), join(dir, 'gpt.pt'));
const grid = p.grid(32), opts = { classes: [2], grid, cfg: 3, topK: 1 };
const ar = await generateLlamaGen(p.model, opts), sjd = await generateSjd(p.model, opts);
if (JSON.stringify(ar.tokens) !== JSON.stringify(sjd.tokens)) { console.error('SJD greedy differs from plain greedy'); process.exit(1); }
const img = await p.decodeImages(ar.tokens, grid);
await writeImageTensor('llamagen.png', img.reshape(img.shape.slice(1)));
console.log(`LlamaGen ${grid}x${grid} tokens; SJD ${sjd.stats.forwardPasses} passes for ${ar.stats.forwardPasses}`);
p.close();
EOF
run node llamagen.mjs | sed 's/^/  /'

step "check the PNGs"
run node -e '
const { readFileSync } = require("node:fs");
for (const f of ["gen.png", "render.png", "llamagen.png"]) {
  const b = readFileSync(f);
  const sig = b.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
  if (!sig || b.toString("latin1", 12, 16) !== "IHDR") { console.error(`${f}: not a PNG`); process.exit(1); }
  console.log(`  ${f}: PNG ${b.readUInt32BE(16)}x${b.readUInt32BE(20)}, ${b.length} bytes`);
}'

step "without the platform packages and a compiler, npm install must fail with one clear message"
neg="$work/neg"
version=$(node -p 'require("./package.json").version')
mkdir -p "$neg"
echo '{"name":"neg","version":"1.0.0","private":true}' > "$neg/package.json"
if (cd "$neg" && "${nonet[@]}" env -u TESSERA_ADDON_PATH PATH="$bin" npm install --offline --cache "$cache" --no-audit --no-fund \
    --foreground-scripts "$work/tarballs/tessera-$version.tgz" > "$work/neg.log" 2>&1); then
  echo "pack-test: the install without a binary or a compiler succeeded" >&2; exit 1
fi
grep -q '@tessera/linux-x64: not installed' "$work/neg.log" && grep -q 'cannot build the native addon, missing: cmake' "$work/neg.log" \
  || { cat "$work/neg.log" >&2; echo "pack-test: the failure message is not the expected one" >&2; exit 1; }
grep -E '^(tessera:|  )' "$work/neg.log" | sed 's/^/  /'

if [[ ${PACK_TEST_SOURCE:-0} == 1 ]]; then
  # Part 3's fallback: the main tarball alone (no platform package matches), so
  # install.mjs compiles from the packed sources; cmake-js takes the N-API
  # headers from node-api-headers, so this too runs without a network.
  step "source fallback: the main package alone, $net_note, cmake and a compiler on PATH (TESSERA_CUDA=OFF)"
  srcapp="$work/src"
  mkdir -p "$srcapp"
  echo '{"name":"src","version":"1.0.0","private":true,"type":"module"}' > "$srcapp/package.json"
  if ! (cd "$srcapp" && "${nonet[@]}" env -u TESSERA_ADDON_PATH -u TESSERA_CUDA_LIB TESSERA_CUDA=OFF npm install --offline \
      --cache "$cache" --no-audit --no-fund --foreground-scripts "$work/tarballs/tessera-$version.tgz" > "$work/src.log" 2>&1); then
    tail -30 "$work/src.log" >&2; echo "pack-test: the source build failed" >&2; exit 1
  fi
  grep -E '^tessera:' "$work/src.log" | sed 's/^/  /'
  (cd "$srcapp" && "${nonet[@]}" env -u TESSERA_ADDON_PATH -u TESSERA_CUDA_LIB npx tessera info) > "$work/src-info.txt"
  sed -n 2p "$work/src-info.txt" | sed 's/^/  /'
  grep -q 'node_modules/tessera/build/Release/tessera.node (local build)' "$work/src-info.txt" \
    || { cat "$work/src-info.txt" >&2; echo "pack-test: the source-built addon is not the one loaded" >&2; exit 1; }
fi

step "package sizes"
node -e '
const [dir, ...names] = process.argv.slice(1);
let cpuOk = true;
for (const n of names) {
  const [p] = JSON.parse(require("node:fs").readFileSync(`${dir}/pack-${n}.json`, "utf8"));
  const mb = (x) => (x / 1e6).toFixed(2) + " MB";
  console.log(`  ${p.filename.padEnd(36)} ${mb(p.size).padStart(9)} compressed, ${mb(p.unpackedSize).padStart(9)} unpacked, ${p.entryCount} files`);
  if (n === "linux-x64" && p.size > 10e6) cpuOk = false;
}
if (!cpuOk) { console.error("pack-test: the CPU package is over 10 MB compressed"); process.exit(1); }
' "$work" main "${pkgs[@]}"
step "ok"
