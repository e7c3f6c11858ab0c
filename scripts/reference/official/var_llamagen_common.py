"""Shared helpers of check_var.py and check_llamagen.py (our own code).

These scripts import the OFFICIAL model classes from an extracted copy of the
official repository (given with --repo, kept outside this project) and write
their outputs for tiny non-standard configurations. Nothing here changes the
official maths: the shims below only supply imports that Debian's PyTorch 1.13
lacks (each is marked SHIM with the reason).
"""
import contextlib
import json
import math
import os
import sys
import types

import torch


def add_repo(repo):
    repo = os.path.abspath(repo)
    if not os.path.isdir(repo):
        sys.exit(f'--repo {repo} is not a directory (extract the official repository there first)')
    sys.path.insert(0, repo)
    return repo


def shim_module(name, **attrs):
    """Registers an empty module `name` (and its parents) holding `attrs`, unless it imports."""
    try:
        __import__(name)
        return
    except ImportError:
        pass
    parts = name.split('.')
    for i in range(1, len(parts) + 1):
        sub = '.'.join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
        if i > 1:
            setattr(sys.modules['.'.join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    for k, v in attrs.items():
        setattr(sys.modules[name], k, v)


def save_safetensors(tensors, metadata, path):
    """make_var_fixtures.py's safetensors writer, with floats as float32, other tensors as
    int32 and metadata values as strings."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    from make_var_fixtures import save_safetensors as write

    def cast(t):
        t = t.detach()
        return t.float() if t.is_floating_point() else t.to(torch.int32)
    write({k: cast(t) for k, t in tensors.items()}, {k: str(v) for k, v in metadata.items()}, path)


def round_params(module, dtype):
    """Rounds every floating parameter and buffer through `dtype` (the storage type), so the
    official float32 run sees exactly the values the stored file holds."""
    if dtype == torch.float32:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(dtype).float())


def state_dict_as(module, dtype):
    """The module's state_dict (parameters and buffers, official key names) with floats stored as
    `dtype`. Entries that are one tensor (tie_same_shapes) stay one tensor, so torch.save writes
    their storage once."""
    out, memo = {}, {}
    for k, v in module.state_dict().items():
        key = (v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
        if key not in memo:
            memo[key] = (v.to(dtype) if v.is_floating_point() else v).clone().contiguous()
        out[k] = memo[key]
    return out


def tie_same_shapes(module):
    """Makes every conv kernel (4-D parameter) of `module` with an earlier kernel's shape share
    that kernel's tensor: the committed fixtures stay small. Every layer still runs on its own
    input with its own biases and norms; the untied configurations of the check scripts are what
    catch a layer reading another layer's kernel."""
    first = {}
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() != 4:
                continue
            q = first.setdefault(tuple(p.shape), p)
            if q is not p:
                p.data = q.data


def margin(logits):
    """(top1 - top2) / max|logits| over the last axis, the smallest over all rows: how far a greedy
    choice is from a tie, relative to the scale (float32 error is ~1e-6 of it)."""
    flat = logits.reshape(-1, logits.shape[-1]).double()
    top = flat.topk(2, dim=-1).values
    return ((top[:, 0] - top[:, 1]).min() / flat.abs().max()).item()


@contextlib.contextmanager
def recorded_var_sampling(var_mod, *namespaces):
    """Replaces the official VAR sample_with_top_k_top_p_ (in var_mod and in each
    dict namespace holding a copy, such as the edit demo's) by a wrapper that
    records, per call, the ids drawn and how far each choice is from a tie;
    yields (picked, margins) and restores the original."""
    orig = var_mod.sample_with_top_k_top_p_
    picked, margins = [], []

    def recording(logits_BlV, **kw):
        margins.append(margin(logits_BlV))
        idx = orig(logits_BlV, **kw)
        picked.append(idx[:, :, 0].clone())
        return idx

    var_mod.sample_with_top_k_top_p_ = recording
    for ns in namespaces:
        ns['sample_with_top_k_top_p_'] = recording
    try:
        yield picked, margins
    finally:
        var_mod.sample_with_top_k_top_p_ = orig
        for ns in namespaces:
            ns['sample_with_top_k_top_p_'] = orig


def write_manifest(out, entries):
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(entries, f, indent=1)
        f.write('\n')


def normal_(t, g, std, mean=0.0):
    with torch.no_grad():
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64).mul(std).add(mean).to(t.dtype))


def fan_in_std(w, gain=1.0):
    return gain / math.sqrt(max(1, w[0].numel()))


FIXTURES_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'test', 'fixtures', 'official')


def gzip_dir(d):
    """Replaces every file of d by a gzip copy (mtime 0: the same bytes on every run)."""
    import gzip
    import shutil
    for f in os.listdir(d):
        p = os.path.join(d, f)
        if f.endswith('.gz'):
            continue
        with open(p, 'rb') as src, gzip.GzipFile(p + '.gz', 'wb', mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        os.remove(p)


def run_main(doc, family, load_official, configs, fixtures, run_config, fixture_dir='var-llamagen', gzip_fixtures=False,
             after=None):
    """The command line shared by the check_{var,llamagen}*.py scripts: run the
    configurations (or --only some; `fixtures` with --fixtures, float16
    weights), write their files (gzipped with `gzip_fixtures` when writing
    fixtures), merge their entries into the manifest of the output directory,
    then call after(out, official) if given."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help=f'extracted official {family} repository')
    ap.add_argument('--out', help=f'output directory (default with --fixtures: test/fixtures/official/{fixture_dir})')
    ap.add_argument('--fixtures', action='store_true', help='write the tiny committed fixtures (float16 weights)')
    ap.add_argument('--only', help='comma-separated config names')
    a = ap.parse_args()
    torch.set_num_threads(1)
    official = load_official(a.repo)
    chosen = fixtures if a.fixtures else configs
    out = a.out or (os.path.join(FIXTURES_ROOT, fixture_dir) if a.fixtures else None)
    if out is None:
        sys.exit('give --out (or --fixtures)')
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, 'manifest.json')
    entries = json.load(open(manifest_path)) if os.path.exists(manifest_path) else []
    cache = {}
    for name, cfg in chosen.items():
        if a.only and name not in a.only.split(','):
            continue
        entry = run_config(name, cfg, official, out, 'float16' if a.fixtures else 'float32', cache)
        if a.fixtures and gzip_fixtures:
            gzip_dir(os.path.join(out, name))
        entries = [e for e in entries if e['name'] != name] + [entry]
    write_manifest(out, entries)
    if after is not None:
        after(out, official)


def init_autoencoder(module, g):
    """Random weights of a working scale for the VQ tokenizers: convs ~
    N(0, 1/fan_in), norm gains near 1, non-zero biases, codebook ~ N(0, 1)."""
    for name, p in module.named_parameters():
        if name.endswith('.weight') and p.dim() == 4:
            normal_(p, g, fan_in_std(p))
        elif name == 'quantize.embedding.weight':
            normal_(p, g, 1.0)
        elif 'norm' in name and name.endswith('.weight'):
            normal_(p, g, 0.1, 1.0)
        else:
            normal_(p, g, 0.1)


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False):
    """SHIM: torch.nn.functional.scaled_dot_product_attention (PyTorch >= 2.0) for PyTorch 1.13:
    the documented math, softmax(q·kᵀ/√d + mask)·v, a boolean mask keeping True; is_causal keeps
    j <= i. Dropout is never used here (eval)."""
    import math

    import torch
    assert dropout_p == 0.0
    L, S = query.size(-2), key.size(-2)
    attn = query @ key.transpose(-2, -1) * (1.0 / math.sqrt(query.size(-1)))
    if is_causal:
        attn = attn.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float('-inf'))
    if attn_mask is not None:
        attn = attn.masked_fill(~attn_mask, float('-inf')) if attn_mask.dtype == torch.bool else attn + attn_mask
    return attn.softmax(dim=-1) @ value


def shim_llamagen_imports():
    """The PyTorch 2 names LlamaGen-derived code (LlamaGen, NAR) needs at import time, on 1.13."""
    import torch.nn.functional as F
    if not hasattr(F, 'scaled_dot_product_attention'):
        F.scaled_dot_product_attention = sdpa
    # SHIM: generate.py imports torch._dynamo.config / torch._inductor.config only to set compile
    # options it leaves commented out; empty modules keep it importable on PyTorch 1.13.
    shim_module('torch._dynamo.config')
    shim_module('torch._inductor.config')


def torch_for_generate():
    """SHIM: the `torch` a LlamaGen-style generate.py module sees. generate() enters `with
    torch.device(device):` (a PyTorch 2 default-device context) and `with
    torch.backends.cuda.sdp_kernel(...)` (a PyTorch 2 kernel choice; 1.13 names its arguments
    differently): on 1.13 both become no-op contexts for that one module (everything is on the CPU
    and the SDPA shim is the math kernel). It also makes input_pos as torch.tensor([T],
    dtype=torch.int) and indexes with it; PyTorch 1.13 indexes only with int64, so that one tensor
    is made int64 (same values). No other torch name is touched."""
    import contextlib
    import types

    import torch
    proxy = types.ModuleType('torch_proxy_for_generate')
    proxy.__getattr__ = lambda name: getattr(torch, name)
    proxy.device = lambda *a, **k: contextlib.nullcontext()
    backends = types.ModuleType('torch_backends_proxy')
    backends.__getattr__ = lambda name: getattr(torch.backends, name)
    backends.cuda = types.SimpleNamespace(sdp_kernel=lambda **k: contextlib.nullcontext())
    proxy.backends = backends
    proxy.tensor = lambda data, **k: torch.tensor(data, **({**k, 'dtype': torch.long} if k.get('dtype') is torch.int else k))
    return proxy


def build_gpt(cfg, ModelArgs, Transformer, g):
    """A class-conditional LlamaGen-layout GPT (LlamaGen's or NAR's Transformer) of config cfg,
    with seeded non-trivial weights: norm gains near 1 (attention_norm, ffn_norm, norm,
    medusa_norm), embeddings ~ N(0, 1), the rest ~ N(0, 1/fan_in) (zero-initialised heads too)."""
    args = dict(dim=cfg['dim'], n_layer=cfg['n_layer'], n_head=cfg['n_head'], n_kv_head=cfg.get('n_kv_head'),
                vocab_size=cfg['vocab'], num_classes=cfg['classes'], block_size=cfg['grid'] ** 2, cls_token_num=1,
                model_type='c2i', token_dropout_p=0.0, resid_dropout_p=0.0, ffn_dropout_p=0.0)
    for k in ('multiple_of', 'ffn_dim_multiplier'):
        if k in cfg:
            args[k] = cfg[k]
    model = Transformer(ModelArgs(**args))
    for name, p in model.named_parameters():
        if name.endswith('norm.weight'):
            normal_(p, g, 0.2, 1.0)
        elif 'embedding' in name:
            normal_(p, g, 1.0)
        else:
            normal_(p, g, fan_in_std(p))
    return model.eval()
