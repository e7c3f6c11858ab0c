"""Official SJD and LANTERN acceptance/resampling rules on seeded random distributions (our own harness).

Runs the OFFICIAL functions, imported from extracted copies of the official
repositories (never copied into this project):

  SJD      tyshiwo1/Accelerating-T2I-AR-with-SJD @ b389cfb
           scheduler/jacobi_iteration_lumina_mgpt.py: SpeculativeSampler.__call__
           (acceptance + residual resampling with the processors re-applied) and
           prefix_matching_next_tokens (batch: the minimum accepted length, the
           bonus token, the tokens left over for the next drafts);
           scheduler/logit_processor_3dim.py: TopPLogitsWarper3d (the LlamaGen
           script's top-p).
  LANTERN  jadohu/LANTERN @ 3a56e45
           models/ea_model_llamagen.py: EaModel.evaluate_posterior_v1 (static
           tree, drafter probabilities q: LANTERN++) and EaModel.evaluate_posterior
           (dynamic tree, drafts taken as one-hot), with lantern_k / lantern_delta
           (> 1: LANTERN++'s λ); entrypoints/generate_codebook.py:
           run_generate_codebook (the neighbour table).

and writes test/fixtures/official/speculative-cases.json.gz (or --out), which
test/official-speculative.test.ts checks against Tessera without Python:

  sjd[c]      one verification pass per case: p = advanced_prob [B, W, V] and
              q = draft_prob [B, W, V] (row 0 of q unused: x0), drafts (x0 and
              W − 1 drafts), the processors (top-k, top-p) re-applied to the
              residual, and per (b, draft i):
                thr[b][i-1]   the official acceptance threshold: u is accepted
                              iff u < thr (found by bisection over float32 u
                              fed to the official code through torch.rand);
                res[b][i-1]   the official residual distribution at a rejection
                              of draft i (the probabilities the official code
                              hands to torch.multinomial), null if draft i
                              cannot be reached (an earlier threshold is 0);
              and one batch pass with seeded uniforms (u, r): the official
              first misaligned index per image, the replacement tokens (our
              multinomial shim draws by inverse CDF at r), matched_num and the
              matched / unmatched tokens of prefix_matching_next_tokens.
  lantern[c]  one draft x against p, proposal q (dense or one-hot), the
              official neighbour table, k and δ (or λ): thr (accepted iff
              u ≤ thr, by bisection over u from random.random()), the residual
              of evaluate_posterior_v1 (res_v1) and, for one-hot drafts, of
              evaluate_posterior (res_dyn).
  tables[c]   a codebook and run_generate_codebook's table (all V − 1 columns).

SHIMs (each only supplies what Debian's PyTorch 1.13 environment lacks; none
changes the official maths): transformers is not installed, so its classes are
stand-ins (LogitsProcessorList applies processors in order; TopKLogitsWarper
masks scores below the k-th largest, its documented rule); absl.logging;
LANTERN's model/drafter modules (not exercised: evaluate_posterior* only read
self.nearest_latents); torch.rand / torch.multinomial / random.random are
replaced during a call to feed chosen uniforms and record the distribution
handed to the sampler.

  git --git-dir=/work/.mirror/tyshiwo1+Accelerating-T2I-AR-with-SJD/repo archive HEAD scheduler | tar -x -C /tmp/official-sjd
  git --git-dir=/work/.mirror/jadohu+LANTERN/repo archive HEAD models entrypoints | tar -x -C /tmp/official-lantern
  /usr/bin/python3 scripts/reference/official/check_speculative.py --repo /tmp/official-sjd --lantern-repo /tmp/official-lantern
"""
import argparse
import contextlib
import gzip
import importlib.util
import json
import os
import random
import struct
import sys
import types
import typing

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import var_llamagen_common as common  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
DEFAULT_OUT = os.path.join(ROOT, 'test', 'fixtures', 'official', 'speculative-cases.json.gz')


# ---------------------------------------------------------------- shims ----
class ProcessorList(list):
    """SHIM: transformers.LogitsProcessorList (applies each processor in order)."""

    def __call__(self, input_ids, scores, **kw):
        for p in self:
            scores = p(input_ids, scores)
        return scores


class TopKWarper:
    """SHIM: transformers TopKLogitsWarper: scores below the k-th largest become -inf."""

    def __init__(self, top_k, filter_value=-float('inf'), min_tokens_to_keep=1):
        self.top_k = max(top_k, min_tokens_to_keep)
        self.filter_value = filter_value

    def __call__(self, input_ids, scores):
        k = min(self.top_k, scores.size(-1))
        return scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], self.filter_value)


def shim_transformers():
    common.shim_module('transformers', GenerationConfig=object, AutoTokenizer=object, PreTrainedModel=torch.nn.Module,
                       PretrainedConfig=object, AutoConfig=object)
    common.shim_module('transformers.cache_utils', Cache=object, StaticCache=object, DynamicCache=object)
    common.shim_module('transformers.modeling_attn_mask_utils', AttentionMaskConverter=object)
    common.shim_module('transformers.generation', PrefixConstrainedLogitsProcessor=object, LogitsProcessorList=ProcessorList,
                       UnbatchedClassifierFreeGuidanceLogitsProcessor=object)
    common.shim_module('transformers.generation.logits_process', LogitsProcessor=object, LogitsWarper=object,
                       TopKLogitsWarper=TopKWarper, LogitsProcessorList=ProcessorList)
    common.shim_module('transformers.utils', ModelOutput=object, is_torchdynamo_compiling=lambda: False)
    common.shim_module('transformers.generation.utils', GenerateNonBeamOutput=object, GenerateEncoderDecoderOutput=object,
                       GenerateDecoderOnlyOutput=object)
    common.shim_module('transformers.generation.stopping_criteria', StoppingCriteriaList=ProcessorList)
    common.shim_module('absl', logging=types.SimpleNamespace(info=lambda *a, **k: None))
    common.shim_module('huggingface_hub', hf_hub_download=None)


def load_sjd(repo):
    common.add_repo(repo)
    shim_transformers()
    import scheduler.jacobi_iteration_lumina_mgpt as sjd
    import scheduler.logit_processor_3dim as lp
    return sjd, lp


def load_file_as(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_lantern(repo):
    repo = common.add_repo(repo)
    shim_transformers()
    # SHIM: ea_model_llamagen.py's relative imports pull in the EAGLE drafter and the KV
    # variant of the base model, which evaluate_posterior* never touch; stand-ins. The
    # tree choices (pure data) are the official file.
    pkg = types.ModuleType('lantern_models')
    pkg.__path__ = [os.path.join(repo, 'models')]
    sys.modules['lantern_models'] = pkg
    for sub, attrs in {'kv_variants': {}, 'kv_variants.modeling_llamagen_kv': {'LlamaForCausalLM': object},
                       'drafters': {},
                       # drafters/utils.py's star import also brings `random` and typing's names into the module
                       'drafters.utils': {'random': random,
                                          **{n: getattr(typing, n) for n in ('Tuple', 'List', 'Optional', 'Union', 'Dict', 'Any')}},
                       'drafters.kv_cache': {'initialize_past_key_values': None},
                       'drafters.cnets_llamagen': {'Model': object}, 'configs': {}, 'configs.configs': {'EConfig': object}}.items():
        m = types.ModuleType('lantern_models.' + sub)
        m.__dict__.update(attrs)
        sys.modules['lantern_models.' + sub] = m
    load_file_as('lantern_models.drafters.choices', os.path.join(repo, 'models', 'drafters', 'choices.py'))
    ea = load_file_as('lantern_models.ea_model_llamagen', os.path.join(repo, 'models', 'ea_model_llamagen.py'))
    return ea, repo


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def inverse_cdf(probs, r):
    """Our multinomial stand-in: the first index whose running sum passes r·Σ (float64)."""
    w = probs.double().reshape(-1)
    c = torch.cumsum(w, 0)
    idx = int(torch.nonzero(c > r * c[-1])[0]) if float(c[-1]) > 0 else 0
    return idx


# --------------------------------------------------------------- inputs ----
def processed(logits, top_k, top_p):
    """Our own processing of the random inputs (LlamaGen's rule): top-k, then top-p, softmax."""
    l = logits.clone()
    if top_k > 0:
        l[l < torch.topk(l, top_k)[0][..., -1, None]] = -float('inf')
    if top_p < 1.0:
        s, i = torch.sort(l, descending=True)
        cum = torch.cumsum(torch.softmax(s, -1), -1)
        rm = cum > top_p
        rm[..., 1:] = rm[..., :-1].clone()
        rm[..., 0] = False
        l[rm.scatter(-1, i, rm)] = -float('inf')
    return torch.softmax(l, -1)


def f32_bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]


def bits_f32(b):
    return struct.unpack('<f', struct.pack('<I', b))[0]


def rows(t):
    return [[float(v) for v in r] for r in t]


# ------------------------------------------------------------------ SJD ----
def sjd_processors(lp, top_k, top_p):
    procs = ProcessorList()
    if top_k > 0:
        procs.append(TopKWarper(top_k))  # the LlamaGen solver: TopKLogitsWarper(image_top_k) ...
    procs.append(lp.TopPLogitsWarper3d(top_p=top_p))  # ... then TopPLogitsWarper3d(image_top_p)
    return procs


def sjd_call(sjd, procs, tokens, y, p, q, u, r=None, record=None):
    """One official SpeculativeSampler call with the uniform u[b][i] for draft i (rs[b, i, :])."""
    B, W, V = p.shape
    sampler = sjd.SpeculativeSampler(
        generator=None, reject_sampling_relative_ids=-torch.ones(B, dtype=torch.long),
        reject_sampling_draft_token_logits=torch.zeros(B, V, dtype=torch.long),
        sampling_last_draft_token=torch.zeros(B, dtype=torch.long))
    U = torch.tensor(u, dtype=torch.float32)[:, :, None].expand(B, W, V).contiguous()
    calls = []

    def fake_rand(shape, *a, **k):
        assert tuple(shape) == (B, W, V)
        return U.clone()

    def fake_multinomial(probs, num_samples=1, generator=None, **k):
        pr = probs.reshape(-1, probs.shape[-1])
        calls.append(pr[0].clone())
        b = len(calls) - 1
        tok = inverse_cdf(pr[0], r[b] if r is not None else 0.5)
        return torch.tensor([[tok]]).reshape(*probs.shape[:-1], 1)

    out = {}
    with patched(torch, 'rand', fake_rand), patched(torch, 'multinomial', fake_multinomial):
        if record is None:
            out['fm'], _, _ = sampler(draft_tokens=tokens, advanced_tokens=y, draft_prob=q, advanced_prob=p,
                                      logits_processor=procs, logits_warper=None,
                                      all_collected_input_ids=torch.zeros(B, 1, dtype=torch.long))
        else:
            # The whole pass: prefix_matching_next_tokens around the sampler (batch handling).
            orig = sampler.__call__

            class Spy:
                def __call__(self, **kw):
                    res = orig(**kw)
                    out['fm'] = list(res[0])
                    out['resampled'] = res[1]
                    return res
            n, mt, ut, _, _ = sjd.prefix_matching_next_tokens(
                model_input_ids=tokens, next_tokens=y, next_token_scores=p, is_prefilling_phase=False,
                input_token_scores=q, prefix_token_sampler=Spy(), logits_processor=procs, logits_warper=None,
                all_collected_input_ids=torch.zeros(B, 1, dtype=torch.long))
            out.update(matched=int(n), matched_tokens=mt.tolist(), unmatched_tokens=ut.tolist())
    out['calls'] = calls
    return out


def sjd_case(sjd, lp, g, name, B, W, V, top_k, top_p, onehot_from, likes=False, accept_all=False):
    procs = sjd_processors(lp, top_k, top_p)
    p = processed(torch.randn(B, W, V, generator=g) * 2.0, top_k, top_p)
    # q: the previous iteration's p for recycled drafts (dense), one-hot for the random top-up. Draft i
    # is verified against p[i − 1]; `likes` draws q[i] near it (long accepted runs).
    near = torch.cat([p[:, :1], p[:, :-1]], 1).log().clamp(min=-30) if likes else 0
    q = processed(torch.randn(B, W, V, generator=g) * (0.4 if likes else 2.0) + near, top_k, top_p)
    tokens = torch.zeros(B, W, dtype=torch.long)
    for b in range(B):
        tokens[b, 0] = int(torch.randint(V, (1,), generator=g))
        for i in range(1, W):
            if i >= onehot_from:
                x = int(torch.randint(V, (1,), generator=g))
                q[b, i] = 0
                q[b, i, x] = 1
            else:
                x = int(torch.multinomial(q[b, i], 1, generator=g))
            tokens[b, i] = x
    y = torch.stack([torch.multinomial(p[b], 1, generator=g)[:, 0] for b in range(B)])
    thr = [[None] * (W - 1) for _ in range(B)]
    res = [[None] * (W - 1) for _ in range(B)]
    for b in range(B):
        for i in range(1, W):
            u = [[0.0] * W for _ in range(B)]
            # Reachable: every earlier draft accepted at u = 0 (threshold > 0).
            u[b][i] = 1.0  # never < min(1, ratio): a rejection at draft i
            o = sjd_call(sjd, procs, tokens, y, p, q, u)
            if o['fm'][b] != i:
                break  # an earlier draft of image b has threshold 0
            res[b][i - 1] = [float(v) for v in o['calls'][[c for c in range(B) if o['fm'][c] < W].index(b)]]
            lo, hi = 0, f32_bits(1.0) + 1  # smallest float32 u that is rejected
            while lo < hi:
                mid = (lo + hi) // 2
                u[b][i] = bits_f32(mid)
                if sjd_call(sjd, procs, tokens, y, p, q, u)['fm'][b] == i:
                    hi = mid
                else:
                    lo = mid + 1
            thr[b][i - 1] = bits_f32(lo) if lo <= f32_bits(1.0) else 2.0
    # One batch pass with seeded uniforms, replacements by inverse CDF at r.
    ub = torch.rand(B, W, generator=g).mul(0.0 if accept_all else 1.0).tolist()  # accept_all: u = 0
    rb = torch.rand(B, generator=g).tolist()
    batch = sjd_call(sjd, procs, tokens, y, p, q, ub, r=rb, record=True)
    fm = [int(v) for v in batch['fm']]
    return dict(name=name, B=B, W=W, V=V, topK=top_k, topP=top_p, p=[rows(p[b]) for b in range(B)],
                q=[rows(q[b]) for b in range(B)], tokens=tokens.tolist(), y=y.tolist(), thr=thr, res=res,
                batch=dict(u=ub, r=rb, fm=fm, resampled=batch['resampled'].tolist(), matched=batch['matched'],
                           matchedTokens=batch['matched_tokens'], unmatchedTokens=batch['unmatched_tokens']))


# -------------------------------------------------------------- LANTERN ----
def official_table(repo, codebook):
    """run_generate_codebook(--model llamagen) on our codebook: returns the uint16 table [V, V − 1]."""
    vq = types.ModuleType('models.base_models.llamagen.vq_model')

    class VQ16:  # SHIM: the VQ model, only its quantize.embedding.weight is read
        def __init__(self, codebook_size, codebook_embed_dim):
            self.quantize = types.SimpleNamespace(embedding=types.SimpleNamespace(weight=codebook))

        def load_state_dict(self, sd):
            pass
    vq.VQ_16 = VQ16
    for n in ['models', 'models.base_models', 'models.base_models.llamagen']:
        sys.modules.setdefault(n, types.ModuleType(n))
    sys.modules['models.base_models.llamagen.vq_model'] = vq
    gen = load_file_as('lantern_generate_codebook', os.path.join(repo, 'entrypoints', 'generate_codebook.py'))
    saved = {}
    # SHIM: torch.uint16 (PyTorch >= 2.3) is only the storage type of the saved ids (< 2^16);
    # int32 holds them exactly on 1.13.
    if not hasattr(torch, 'uint16'):
        torch.uint16 = torch.int32
    with patched(torch, 'load', lambda *a, **k: {'model': {}}), \
            patched(np, 'save', lambda path, arr: saved.update(arr=np.array(arr))), \
            patched(os, 'makedirs', lambda *a, **k: None):
        gen.run_generate_codebook(types.SimpleNamespace(model='llamagen', save_path='/nonexistent'))
    return saved['arr']


def lantern_case(ea, g, name, p, q, x, table, k, delta, onehot):
    V = p.shape[0]
    this = types.SimpleNamespace(nearest_latents=torch.from_numpy(table.astype(np.int64)))
    logits = torch.stack([p.log(), torch.zeros(V)])[None]  # level 1 reads row 0; row 1: the bonus
    candidates = torch.tensor([[0, x]])
    ident = lambda ids, l: l  # noqa: E731 (p is already processed: softmax(log p) = p)

    def v1(u):
        with patched(random, 'random', lambda: u):
            return ea.EaModel.evaluate_posterior_v1(
                this, logits, candidates, ident, torch.tensor([[1.0, float(q[x])]]), [q[None]], [[0, 0]], None,
                [[[], []]], lantern=True, lantern_k=k, lantern_delta=delta)

    def dyn(u):
        with patched(random, 'random', lambda: u):
            return ea.EaModel.evaluate_posterior(this, logits, candidates, ident, lantern=True, lantern_k=k,
                                                 lantern_delta=delta)
    lo, hi = 0.0, 1.0 + 1e-9  # largest u accepted (u <= acp)
    if int(v1(0.0)[1]) == 0:
        thr = -1.0
    else:
        for _ in range(60):
            mid = (lo + hi) / 2
            if int(v1(mid)[1]) == 1:
                lo = mid
            else:
                hi = mid
        thr = lo
    out = dict(name=name, V=V, x=x, k=k, delta=delta, onehot=onehot, p=[float(v) for v in p], q=[float(v) for v in q],
               thr=thr)
    _, acc, sp = v1(float('inf'))  # u = inf: always a rejection (acp is finite)
    out['res_v1'] = [float(v) for v in sp] if int(acc) == 0 else None
    if onehot:
        _, acc, sp = dyn(float('inf'))
        out['thr_dyn'] = None
        out['res_dyn'] = [float(v) for v in sp] if int(acc) == 0 else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, help='extracted SJD repository (needs scheduler/)')
    ap.add_argument('--lantern-repo', required=True, help='extracted LANTERN repository (needs models/, entrypoints/)')
    ap.add_argument('--out', default=DEFAULT_OUT)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    sjd, lp = load_sjd(a.repo)
    ea, lrepo = load_lantern(a.lantern_repo)
    g = torch.Generator().manual_seed(20261129)
    V = 40
    sjd_cases = [
        sjd_case(sjd, lp, g, 'topk12-dense', 3, 7, V, 12, 1.0, onehot_from=99, likes=True),
        sjd_case(sjd, lp, g, 'topk0-mixed', 2, 8, V, 0, 1.0, onehot_from=4, likes=True),
        sjd_case(sjd, lp, g, 'topk20-onehot', 3, 6, V, 20, 1.0, onehot_from=1),
        sjd_case(sjd, lp, g, 'topk8-topp0.8', 2, 6, V, 8, 0.8, onehot_from=99, likes=True),
        sjd_case(sjd, lp, g, 'topk0-topp0.9-mixed', 2, 6, V, 0, 0.9, onehot_from=3, likes=True),
        sjd_case(sjd, lp, g, 'topk12-all-accepted', 2, 5, V, 12, 1.0, onehot_from=99, likes=True, accept_all=True),
    ]
    # Neighbour tables: a random codebook, and one with exact ties (duplicate codes, grid points).
    cb_rand = torch.randn(V, 8, generator=g)
    grid = torch.tensor([[float(i % 4), float((i // 4) % 5), 0.0, 0.0] for i in range(V)])
    grid[V - 3:] = grid[:3]  # three duplicated codes
    tables = []
    for nm, cb in [('random', cb_rand), ('ties', grid)]:
        t = official_table(lrepo, cb)
        tables.append(dict(name=nm, V=V, D=cb.shape[1], codebook=rows(cb), table=t.astype(np.int64).tolist()))
    table = np.array(tables[0]['table'])
    lantern_cases = []
    for ci in range(16):
        k = [3, 8, 1, 12][ci % 4]
        delta = [0.05, 0.2, 1.0, 0.5, 1.5, 3.0][ci % 6]
        onehot = ci % 3 == 2
        p = processed(torch.randn(V, generator=g) * 1.5, [0, 16][ci % 2], 1.0)
        if onehot:
            x = int(torch.randint(V, (1,), generator=g))
            q = torch.zeros(V)
            q[x] = 1
        else:
            q = processed(torch.randn(V, generator=g) * 1.5, 0, 1.0)
            x = int(torch.multinomial(q, 1, generator=g))
        lantern_cases.append(lantern_case(ea, g, f'lantern-{ci}', p, q, x, table, k, delta, onehot))
    # δ = 0 with a top-k target: the official code still finds a "relaxed set" when x's nearest
    # neighbour has p = 0 (cumsum 0 <= 0) and then zeroes q on the k + 1 neighbours.
    for ci in range(4):
        p = processed(torch.randn(V, generator=g) * 1.5, 6, 1.0)
        q = processed(torch.randn(V, generator=g) * 0.5, 0, 1.0)
        x = int(torch.multinomial(q, 1, generator=g))
        lantern_cases.append(lantern_case(ea, g, f'lantern-delta0-{ci}', p, q, x, table, 8, 0.0, False))
    doc = dict(source=dict(sjd='tyshiwo1/Accelerating-T2I-AR-with-SJD@b389cfb', lantern='jadohu/LANTERN@3a56e45'),
               sjd=sjd_cases, lantern=lantern_cases, tables=tables)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with gzip.open(a.out, 'wt', compresslevel=9) as f:
        json.dump(doc, f, separators=(',', ':'))
    print(f'wrote {a.out} ({os.path.getsize(a.out)} bytes): {len(sjd_cases)} SJD passes, '
          f'{len(lantern_cases)} LANTERN drafts, {len(tables)} tables')
    # Summary of the official quirks seen in these cases.
    for c in sjd_cases:
        tv = 0.0
        for b in range(c['B']):
            for i in range(1, c['W']):
                r = c['res'][b][i - 1]
                if r is None:
                    continue
                pb, qb = torch.tensor(c['p'][b][i - 1], dtype=torch.float64), torch.tensor(c['q'][b][i], dtype=torch.float64)
                exact = (pb - qb).clamp(min=0)
                exact = exact / exact.sum() if exact.sum() > 0 else exact
                tv = max(tv, 0.5 * float((exact - torch.tensor(r, dtype=torch.float64)).abs().sum()))
        print(f"  sjd {c['name']}: max TV(official residual, norm(max(0, p - q))) = {tv:.3g}")


if __name__ == '__main__':
    main()
