// Octree family at the Node boundary. Octrees cross as plain data: per-depth
// keys (BigInt64Array) and children (Int32Array), the depth-D signals
// (Float32Array), small counts as numbers. Inputs are read in place (pinned
// by the worker); results are std::vectors handed to JS as external
// ArrayBuffers (no copy; freed when collected). Every op is a Promise worker.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "tessera/octree.h"

namespace tessera::bindings {
namespace {

template <class T> struct ArrayTraits;
template <> struct ArrayTraits<int64_t> { static constexpr napi_typedarray_type type = napi_bigint64_array; static constexpr const char* name = "BigInt64Array"; };
template <> struct ArrayTraits<int32_t> { static constexpr napi_typedarray_type type = napi_int32_array; static constexpr const char* name = "Int32Array"; };
template <> struct ArrayTraits<float> { static constexpr napi_typedarray_type type = napi_float32_array; static constexpr const char* name = "Float32Array"; };
template <> struct ArrayTraits<uint32_t> { static constexpr napi_typedarray_type type = napi_uint32_array; static constexpr const char* name = "Uint32Array"; };

// A vector moved into JS as a TypedArray over an external buffer (an
// OctreeArray's block goes back to the host pool when it is collected).
template <class T, class A>
Napi::Value to_js(Napi::Env env, std::vector<T, A>&& v) {
  const size_t n = v.size();
  Napi::ArrayBuffer ab;
  if (n == 0) {
    ab = Napi::ArrayBuffer::New(env, 0);
  } else {
    auto* owner = new std::vector<T, A>(std::move(v));
    ab = Napi::ArrayBuffer::New(env, owner->data(), n * sizeof(T),
                                [](Napi::Env, void*, std::vector<T, A>* o) { delete o; }, owner);
  }
  return Napi::TypedArrayOf<T>::New(env, n, ab, 0, ArrayTraits<T>::type);
}

Napi::Array numbers(Napi::Env env, const std::vector<int64_t>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), static_cast<double>(v[i]));
  return a;
}

// A TypedArray of T (pinned in keep), or null data with length 0 when absent and allowed.
template <class T>
const T* typed(Napi::Env env, const Napi::Value& v, const char* what, size_t* len, KeepAlive* keep, bool optional = false) {
  if (optional && (v.IsUndefined() || v.IsNull())) { *len = 0; return nullptr; }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != ArrayTraits<T>::type)
    throw_error(env, Code::kDtype, std::string(what) + " must be a " + ArrayTraits<T>::name);
  Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
  keep->add(a);
  *len = a.ElementLength();
  static const T kEmpty{};
  return a.ElementLength() ? a.Data() : &kEmpty;  // present but empty is not absent
}

OctreeLevelView parse_level(Napi::Env env, const Napi::Value& v, KeepAlive* keep) {
  if (!v.IsObject()) throw_error(env, Code::kInvalidArgument, "an octree level must be {keys, children, nnumNonEmpty}");
  Napi::Object o = v.As<Napi::Object>();
  OctreeLevelView L;
  size_t nk = 0, nc = 0;
  L.keys = typed<int64_t>(env, o.Get("keys"), "level.keys", &nk, keep);
  L.children = typed<int32_t>(env, o.Get("children"), "level.children", &nc, keep);
  if (nk != nc) throw_error(env, Code::kShape, "level.keys and level.children differ in length");
  L.nnum = static_cast<int64_t>(nk);
  L.nnum_nempty = get_int(env, o, "nnumNonEmpty", -1);
  return L;
}

// {depth, fullDepth, batchSize, levels, points?, normals?, features?, featureChannels}
OctreeView parse_octree(Napi::Env env, const Napi::Value& v, KeepAlive* keep) {
  if (!v.IsObject()) throw_error(env, Code::kInvalidArgument, "expected an octree object");
  Napi::Object o = v.As<Napi::Object>();
  OctreeView t;
  t.depth = get_i32(env, o, "depth", -1);
  t.full_depth = get_i32(env, o, "fullDepth", -1);
  t.batch_size = get_i32(env, o, "batchSize", 1);
  Napi::Value lv = o.Get("levels");
  if (!lv.IsArray()) throw_error(env, Code::kInvalidArgument, "octree.levels must be an array");
  Napi::Array la = lv.As<Napi::Array>();
  for (uint32_t i = 0; i < la.Length(); ++i) t.levels.push_back(parse_level(env, la.Get(i), keep));
  const int64_t U = t.levels.empty() ? 0 : t.levels.back().nnum_nempty;
  size_t n = 0;
  t.feature_channels = get_i32(env, o, "featureChannels", 0);
  t.points = typed<float>(env, o.Get("points"), "octree.points", &n, keep, true);
  if (t.points && static_cast<int64_t>(n) != 3 * U) throw_error(env, Code::kShape, "octree.points must hold 3 values per non-empty leaf");
  t.normals = typed<float>(env, o.Get("normals"), "octree.normals", &n, keep, true);
  if (t.normals && static_cast<int64_t>(n) != 3 * U) throw_error(env, Code::kShape, "octree.normals must hold 3 values per non-empty leaf");
  t.features = typed<float>(env, o.Get("features"), "octree.features", &n, keep, true);
  if (t.features && static_cast<int64_t>(n) != int64_t(t.feature_channels) * U)
    throw_error(env, Code::kShape, "octree.features must hold featureChannels values per non-empty leaf");
  return t;
}

Napi::Object level_to_js(Napi::Env env, OctreeLevel&& L) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("nnum", static_cast<double>(L.keys.size()));
  o.Set("nnumNonEmpty", static_cast<double>(L.nnum_nempty));
  o.Set("batchNnum", numbers(env, L.batch_nnum));
  o.Set("batchNnumNonEmpty", numbers(env, L.batch_nnum_nempty));
  o.Set("keys", to_js(env, std::move(L.keys)));
  o.Set("children", to_js(env, std::move(L.children)));
  return o;
}

Napi::Object octree_to_js(Napi::Env env, Octree&& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("depth", t.depth);
  o.Set("fullDepth", t.full_depth);
  o.Set("batchSize", t.batch_size);
  Napi::Array levels = Napi::Array::New(env, t.levels.size());
  for (size_t d = 0; d < t.levels.size(); ++d) levels.Set(static_cast<uint32_t>(d), level_to_js(env, std::move(t.levels[d])));
  o.Set("levels", levels);
  o.Set("featureChannels", t.feature_channels);
  if (t.has_points) o.Set("points", to_js(env, std::move(t.points)));
  if (t.has_normals) o.Set("normals", to_js(env, std::move(t.normals)));
  if (t.has_features) o.Set("features", to_js(env, std::move(t.features)));
  return o;
}

// A worker whose work and conversion are closures (parsing happens in the
// op's constructor-side lambda on the main thread).
class FnWorker : public OpWorker {
 public:
  FnWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : OpWorker(env), work_(std::move(work)), done_(std::move(done)) {}
  KeepAlive& keep() { return keep_; }
 private:
  void run() override { work_(); }
  Napi::Value result(Napi::Env env) override { return done_ ? done_(env) : env.Undefined(); }
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

// Deletes a worker whose arguments failed to parse (it was never queued).
class Guard {
 public:
  explicit Guard(OpWorker* w) : w_(w) {}
  ~Guard() { delete w_; }
  Napi::Value start() {
    OpWorker* w = w_;
    w_ = nullptr;
    return w->start();
  }
 private:
  OpWorker* w_;
};

Napi::Object opts(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw_error(info.Env(), Code::kInvalidArgument, "expected an options object");
  return info[0].As<Napi::Object>();
}

// octreeBuild({points, normals?, features?, batchIds?, depth, fullDepth, batchSize, outside}) -> Promise<octree & {report}>
Napi::Value build_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  auto st = std::make_shared<std::pair<OctreeBuildArgs, std::pair<Octree, OctreeBuildReport>>>();
  auto* w = new FnWorker(env, [st] { st->second.first = octree_build(st->first, &st->second.second); },
                         [st](Napi::Env e) -> Napi::Value {
                           Napi::Object r = octree_to_js(e, std::move(st->second.first));
                           OctreeBuildReport& rep = st->second.second;
                           Napi::Object ro = Napi::Object::New(e);
                           ro.Set("pointsUsed", static_cast<double>(rep.points_used));
                           ro.Set("pointsOutside", static_cast<double>(rep.points_outside));
                           ro.Set("outsidePerSample", numbers(e, rep.outside_per_sample));
                           ro.Set("pointNode", to_js(e, std::move(rep.point_node)));
                           r.Set("report", ro);
                           return r;
                         });
  OctreeBuildArgs& a = st->first;
  Guard guard(w);
  a.points = parse_tensor(env, o.Get("points"), "points", &w->keep());
  a.normals = parse_optional_tensor(env, o.Get("normals"), "normals", &w->keep());
  a.features = parse_optional_tensor(env, o.Get("features"), "features", &w->keep());
  a.batch_ids = parse_optional_tensor(env, o.Get("batchIds"), "batchIds", &w->keep());
  a.depth = get_i32(env, o, "depth", 6);
  a.full_depth = get_i32(env, o, "fullDepth", 2);
  a.batch_size = get_i32(env, o, "batchSize", 1);
  a.outside = static_cast<OctreeOutside>(get_i32(env, o, "outside", 0));
  return guard.start();
}

// octreeMerge([octree, ...]) -> Promise<octree>
Napi::Value merge_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw_error(env, Code::kInvalidArgument, "octreeMerge expects an array of octrees");
  auto st = std::make_shared<std::pair<std::vector<OctreeView>, Octree>>();
  auto* w = new FnWorker(env, [st] { st->second = octree_merge(st->first); },
                         [st](Napi::Env e) -> Napi::Value { return octree_to_js(e, std::move(st->second)); });
  Napi::Array arr = info[0].As<Napi::Array>();
  Guard guard(w);
  for (uint32_t i = 0; i < arr.Length(); ++i) st->first.push_back(parse_octree(env, arr.Get(i), &w->keep()));
  return guard.start();
}

// octreeSplit({level, flags: Int32Array, batchSize}) / octreeGrow({level, batchSize}) -> Promise<level>
Napi::Value split_grow_js(const Napi::CallbackInfo& info, bool split) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeLevelView level; const int32_t* flags = nullptr; int32_t batch = 1; OctreeLevel out; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env,
                         [st, split] {
                           st->out = split ? octree_split(st->level, st->flags, st->batch) : octree_grow(st->level, st->batch);
                         },
                         [st](Napi::Env e) -> Napi::Value { return level_to_js(e, std::move(st->out)); });
  Guard guard(w);
  st->level = parse_level(env, o.Get("level"), &w->keep());
  st->batch = get_i32(env, o, "batchSize", 1);
  if (st->batch < 1 || st->batch > kOctreeMaxBatch) throw_error(env, Code::kInvalidArgument, "batchSize must be 1..32768");
  if (split) {
    size_t n = 0;
    st->flags = typed<int32_t>(env, o.Get("flags"), "flags", &n, &w->keep());
    if (static_cast<int64_t>(n) != st->level.nnum)
      throw_error(env, Code::kShape, "flags must hold one entry per node of the depth (" + std::to_string(st->level.nnum) + "), got " + std::to_string(n));
  }
  return guard.start();
}

// octreeSearchKeys({level, queries: BigInt64Array}) -> Promise<Int32Array>
Napi::Value search_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeLevelView level; const int64_t* q = nullptr; size_t n = 0; std::vector<int32_t> out; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] {
    st->out.resize(st->n);
    octree_search_keys(st->level, st->q, static_cast<int64_t>(st->n), st->out.data());
  }, [st](Napi::Env e) -> Napi::Value { return to_js(e, std::move(st->out)); });
  Guard guard(w);
  st->level = parse_level(env, o.Get("level"), &w->keep());
  st->q = typed<int64_t>(env, o.Get("queries"), "queries", &st->n, &w->keep());
  return guard.start();
}

// octreeNeighbors({octree, depth, kernel, stride, nempty}) -> Promise<{rows, cols, data}>
Napi::Value neighbors_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeView t; OctreeNeighborArgs a; std::vector<int32_t> out; int64_t rows = 0; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] { st->out = octree_neighbors(st->t, st->a, &st->rows); },
                         [st](Napi::Env e) -> Napi::Value {
                           Napi::Object r = Napi::Object::New(e);
                           r.Set("rows", static_cast<double>(st->rows));
                           r.Set("cols", octree_kernel_size(st->a.kernel));
                           r.Set("data", to_js(e, std::move(st->out)));
                           return r;
                         });
  Guard guard(w);
  st->t = parse_octree(env, o.Get("octree"), &w->keep());
  st->a.depth = get_i32(env, o, "depth", 1);
  st->a.kernel = static_cast<OctreeKernel>(get_i32(env, o, "kernel", 0));
  st->a.stride = get_i32(env, o, "stride", 1);
  st->a.nempty = get_bool(o, "nempty", false);
  return guard.start();
}

// octreeInputFeatures({octree, feature, nempty}) -> Promise<{rows, channels, data}>
Napi::Value features_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeView t; std::string spec; bool nempty = false; std::vector<float> out; int64_t rows = 0; int32_t ch = 0; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] { st->out = octree_input_features(st->t, st->spec, st->nempty, &st->rows, &st->ch); },
                         [st](Napi::Env e) -> Napi::Value {
                           Napi::Object r = Napi::Object::New(e);
                           r.Set("rows", static_cast<double>(st->rows));
                           r.Set("channels", st->ch);
                           r.Set("data", to_js(e, std::move(st->out)));
                           return r;
                         });
  Guard guard(w);
  st->t = parse_octree(env, o.Get("octree"), &w->keep());
  Napi::Value f = o.Get("feature");
  if (!f.IsString()) throw_error(env, Code::kInvalidArgument, "feature must be a string of 'NDLPF' letters");
  st->spec = f.As<Napi::String>().Utf8Value();
  st->nempty = get_bool(o, "nempty", false);
  return guard.start();
}

// octreeSerialize({keys: BigInt64Array, depth, order}) -> Promise<{perm, inverse}>
Napi::Value serialize_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { const int64_t* keys = nullptr; size_t n = 0; int32_t depth = 0; SerialOrder order{}; std::vector<int32_t> perm, inv; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] {
    st->perm.resize(st->n);
    st->inv.resize(st->n);
    octree_serialize(st->keys, static_cast<int64_t>(st->n), st->depth, st->order, st->perm.data(), st->inv.data());
  }, [st](Napi::Env e) -> Napi::Value {
    Napi::Object r = Napi::Object::New(e);
    r.Set("perm", to_js(e, std::move(st->perm)));
    r.Set("inverse", to_js(e, std::move(st->inv)));
    return r;
  });
  Guard guard(w);
  st->keys = typed<int64_t>(env, o.Get("keys"), "keys", &st->n, &w->keep());
  st->depth = get_i32(env, o, "depth", 0);
  st->order = static_cast<SerialOrder>(get_i32(env, o, "order", 0));
  return guard.start();
}

// octreeWindowPlan({batchIds: Int32Array, batchSize, window, dilation, shift}) -> Promise<{numWindows, perm, segments}>
Napi::Value window_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeWindowArgs a; OctreeWindowPlan p; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] { st->p = octree_window_plan(st->a); }, [st](Napi::Env e) -> Napi::Value {
    Napi::Object r = Napi::Object::New(e);
    r.Set("numWindows", static_cast<double>(st->p.num_windows));
    r.Set("perm", to_js(e, std::move(st->p.perm)));
    r.Set("segments", to_js(e, std::move(st->p.segments)));
    return r;
  });
  size_t n = 0;
  Guard guard(w);
  st->a.batch_ids = typed<int32_t>(env, o.Get("batchIds"), "batchIds", &n, &w->keep());
  st->a.n = static_cast<int64_t>(n);
  st->a.batch_size = get_i32(env, o, "batchSize", 1);
  st->a.window = get_i32(env, o, "window", 32);
  st->a.dilation = get_i32(env, o, "dilation", 1);
  st->a.shift = get_bool(o, "shift", false);
  return guard.start();
}

// octreeRows({x, index, out, scatter}) -> Promise<void>
Napi::Value rows_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  auto a = std::make_shared<RowGatherArgs>();
  auto* w = new FnWorker(env, [a] { octree_rows(*a); }, nullptr);
  Guard guard(w);
  a->x = parse_tensor(env, o.Get("x"), "x", &w->keep());
  a->index = parse_tensor(env, o.Get("index"), "index", &w->keep());
  a->out = parse_tensor(env, o.Get("out"), "out", &w->keep());
  a->scatter = get_bool(o, "scatter", false);
  return guard.start();
}

// octreeRpeBias({table, xyz, perm, window, w0, n, out}) -> Promise<void>
Napi::Value rpe_bias_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  auto a = std::make_shared<OctreeRpeBiasArgs>();
  auto* w = new FnWorker(env, [a] { octree_rpe_bias(*a); }, nullptr);
  Guard guard(w);
  a->table = parse_tensor(env, o.Get("table"), "table", &w->keep());
  a->xyz = parse_tensor(env, o.Get("xyz"), "xyz", &w->keep());
  a->perm = parse_tensor(env, o.Get("perm"), "perm", &w->keep());
  a->out = parse_tensor(env, o.Get("out"), "out", &w->keep());
  a->window = get_i32(env, o, "window", 0);
  a->w0 = get_int(env, o, "w0", 0);
  a->n = get_int(env, o, "n", 0);
  return guard.start();
}

// octreeDwconv({x, neighbors, weight, bias?, residual?, out}) -> Promise<void>
Napi::Value dwconv_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  auto a = std::make_shared<OctreeDwConvArgs>();
  auto* w = new FnWorker(env, [a] { octree_dwconv(*a); }, nullptr);
  Guard guard(w);
  a->x = parse_tensor(env, o.Get("x"), "x", &w->keep());
  a->neighbors = parse_tensor(env, o.Get("neighbors"), "neighbors", &w->keep());
  a->weight = parse_tensor(env, o.Get("weight"), "weight", &w->keep());
  a->bias = parse_optional_tensor(env, o.Get("bias"), "bias", &w->keep());
  a->residual = parse_optional_tensor(env, o.Get("residual"), "residual", &w->keep());
  a->out = parse_tensor(env, o.Get("out"), "out", &w->keep());
  return guard.start();
}

// octreeMarchingCubes({octree, sample, radius}) -> Promise<{positions, normals, indices, stats}>
Napi::Value marching_cubes_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = opts(info);
  struct State { OctreeView t; OctreeMeshArgs a; OctreeMeshResult m; };
  auto st = std::make_shared<State>();
  auto* w = new FnWorker(env, [st] { st->m = octree_marching_cubes(st->t, st->a); }, [st](Napi::Env e) -> Napi::Value {
    Napi::Object r = Napi::Object::New(e);
    Napi::Object s = Napi::Object::New(e);
    s.Set("leaves", static_cast<double>(st->m.leaves));
    s.Set("corners", static_cast<double>(st->m.corners));
    s.Set("cells", static_cast<double>(st->m.cells));
    s.Set("surfaceCells", static_cast<double>(st->m.surface_cells));
    s.Set("boundaryEdges", static_cast<double>(st->m.boundary_edges));
    r.Set("stats", s);
    r.Set("positions", to_js(e, std::move(st->m.positions)));
    r.Set("normals", to_js(e, std::move(st->m.normals)));
    r.Set("indices", to_js(e, std::move(st->m.indices)));
    return r;
  });
  Guard guard(w);
  st->t = parse_octree(env, o.Get("octree"), &w->keep());
  st->a.sample = get_i32(env, o, "sample", 0);
  Napi::Value rv = o.Get("radius");
  if (!rv.IsUndefined()) {
    if (!rv.IsNumber()) throw_error(env, Code::kInvalidArgument, "radius must be a number");
    st->a.radius = rv.As<Napi::Number>().DoubleValue();
  }
  return guard.start();
}

}  // namespace

void init_octree(Napi::Env env, Napi::Object exports) {
  exports.Set("octreeBuild", Napi::Function::New(env, build_js));
  exports.Set("octreeMerge", Napi::Function::New(env, merge_js));
  exports.Set("octreeSplit", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return split_grow_js(i, true); }));
  exports.Set("octreeGrow", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return split_grow_js(i, false); }));
  exports.Set("octreeSearchKeys", Napi::Function::New(env, search_js));
  exports.Set("octreeNeighbors", Napi::Function::New(env, neighbors_js));
  exports.Set("octreeInputFeatures", Napi::Function::New(env, features_js));
  exports.Set("octreeSerialize", Napi::Function::New(env, serialize_js));
  exports.Set("octreeWindowPlan", Napi::Function::New(env, window_js));
  exports.Set("octreeRows", Napi::Function::New(env, rows_js));
  exports.Set("octreeDwconv", Napi::Function::New(env, dwconv_js));
  exports.Set("octreeRpeBias", Napi::Function::New(env, rpe_bias_js));
  exports.Set("octreeMarchingCubes", Napi::Function::New(env, marching_cubes_js));
}

}  // namespace tessera::bindings
