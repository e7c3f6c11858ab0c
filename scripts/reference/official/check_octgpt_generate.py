"""Runs the OFFICIAL OctGPT generation loop (octree-nn/octgpt 849d23a,
models/octgpt.py OctGPT.generate / get_remask / mask_by_order, utils/utils.py
sample and seq2octree, ocnn-pytorch's octree_split / octree_grow) on the
small random-weight checkpoints check_octgpt.py wrote, with randomness that
Tessera reproduces, and writes what it does step by step for
test/official-octgpt-generate.test.ts (no Python at test time).

    git --git-dir=/work/.mirror/octree-nn+octgpt/repo archive HEAD models utils | tar -x -C /tmp/octgpt
    git --git-dir=/work/.mirror/octree-nn+ocnn-pytorch/repo archive HEAD ocnn | tar -x -C /tmp/ocnn
    /usr/bin/python3 scripts/reference/official/check_octgpt_generate.py --repo /tmp/octgpt --ocnn /tmp/ocnn \
        --fixtures test/fixtures/official

Determinism. The official generate() draws twice per depth: torch.randperm
(the reveal order) and torch.multinomial (utils.sample, one call per step).
Both torch primitives are replaced by Tessera's own counter-based stream, so
the two loops are fed the same random numbers and every step can be compared
exactly:
  * randperm(n) at depth d returns Tessera's order: Fisher-Yates with
    u = philox_uniform(seed, i, 0x4f43540000 + d) (octgpt_generate.ts
    philoxPermutation).
  * "stream" runs: multinomial(probs, 1) returns, per row j of the call, the
    first class whose running sum of the official float32 probabilities
    exceeds u = philox_uniform(seed, j, step), step = the loop's forward pass
    index counted over all depths (Tessera's sampler definition,
    native/include/tessera/sampling.h). The official probabilities (its own
    logits / temperature and softmax) decide; the smallest |p0 - u| is
    written so a near tie would be visible.
  * "greedy" runs: multinomial is NOT replaced; the official start
    temperatures are 1e-30, so utils.sample's softmax is one-hot and the
    official draw is the argmax (Tessera runs top-k 1).
Philox4x32-10 is re-implemented below from its definition (Salmon et al.,
SC'11) with Tessera's key/counter layout; a few values are written so the
test checks them against Tessera's philoxUniform.

Other SHIMS (no maths changed):
  * check_octgpt.install_shims (sdpa, import stand-ins, stable torch.sort).
  * Tensor.cuda is the identity: generate() moves its schedule scalars to
    CUDA; here they stay on the CPU.
  * torch.topk returns ties lower index first (a stable descending sort,
    same values). get_remask ranks integer scores (codes: wrong bits) with
    topk, so ties are the rule there; their order is implementation-defined
    (CPU partial sort, CUDA radix select), so the comparison fixes one.
Recording only (the originals run unchanged): wrappers count forward_model
calls, keep the mask that mask_by_order returns and the remask that
get_remask returns, and the temperature and draws that utils.sample sees.

Schedules on their own: generate() is run with the transformer replaced by
zeros (a stub forward_model and a stub octree holding only node counts) for
many node counts n and step counts T, so only the official inline schedule
lines decide what mask_by_order is asked for; the masked count after each
step and the temperature of each step are written: n = 1..64 with 10 step counts, five large n, and every
30th of the 8,035 pairs (65 <= n < 5000, 2 <= T <= 64) where a float32 and
a float64 product give different floor(n * cos(.)) (the official product is
float32: a torch int64 count times numpy's float64 cosine).
"""
import argparse
import collections
import gzip
import io
import math
import os
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_ocnn  # noqa: E402  (load_ocnn, arr, write_fixture)
import check_octgpt  # noqa: E402  (install_shims, CONFIGS, build_model)

M32 = 0xFFFFFFFF
STREAM = 0x4f43540000  # Tessera's order stream: step = STREAM + depth


def philox4x32_10(seed, row, step):
    c0, c1, c2, c3 = row & M32, (row >> 32) & M32, step & M32, (step >> 32) & M32
    k0, k1 = seed & M32, (seed >> 32) & M32
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        n0 = ((p1 >> 32) ^ c1 ^ k0) & M32
        n2 = ((p0 >> 32) ^ c3 ^ k1) & M32
        c1, c3 = p1 & M32, p0 & M32
        c0, c2 = n0, n2
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def philox_uniform(seed, row, step):
    v = philox4x32_10(seed, row, step)
    return ((v[1] << 32 | v[0]) >> 11) * (1.0 / 9007199254740992.0)


def philox_permutation(n, seed, stream):
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(philox_uniform(seed, i, stream) * (i + 1))
        p[i], p[j] = p[j], p[i]
    return p


TopK = collections.namedtuple('topk', ['values', 'indices'])


def install_generate_shims():
    torch.Tensor.cuda = lambda self, *a, **k: self
    if not getattr(torch.topk, '_stable_shim', False):
        def stable_topk(input, k, dim=-1, largest=True, sorted=True):
            v, i = torch.sort(input, dim=dim, descending=largest, stable=True)
            return TopK(v.narrow(dim, 0, k), i.narrow(dim, 0, k))
        stable_topk._stable_shim = True
        torch.topk = stable_topk


class Stream:
    """The random draws the official generate() makes, taken from Tessera's stream."""

    def __init__(self, seed, depth_low):
        self.seed, self.depth, self.step = seed, depth_low, -1
        self.min_margin = math.inf
        self.draws = 0

    def randperm(self, n, *a, **k):
        p = torch.tensor(philox_permutation(int(n), self.seed, STREAM + self.depth), dtype=torch.long)
        self.depth += 1
        return p

    def multinomial(self, probs, num_samples, *a, **k):
        assert num_samples == 1 and probs.dim() == 2
        out = torch.empty(probs.shape[0], 1, dtype=torch.long)
        pr = probs.double().numpy()
        for j in range(pr.shape[0]):
            u = philox_uniform(self.seed, j, self.step)
            c, tok = 0.0, None
            for v in range(pr.shape[1]):
                c += pr[j, v]
                if v < pr.shape[1] - 1:
                    self.min_margin = min(self.min_margin, abs(c - u))
                if c > u:
                    tok = v
                    break
            if tok is None:
                tok = int(np.nonzero(pr[j] > 0)[0][-1])
            out[j, 0] = tok
            self.draws += 1
        return out


def load_model(OctGPT, cfg, fixtures):
    model = check_octgpt.build_model(OctGPT, cfg)
    name = f'octgpt-{cfg["name"]}.pth.gz'
    with gzip.open(os.path.join(fixtures, name), 'rb') as fh:
        sd = torch.load(io.BytesIO(fh.read()))
    if 'model_dict' in sd:
        sd = sd['model_dict']
    model.load_state_dict(sd)
    return model.eval(), name


RUNS = [
    # checkpoint (check_octgpt.CONFIGS name), mode, seed, steps per depth, start temperatures, remask stage
    dict(name='a-stream', ckpt='a', mode='stream', seed=7, steps=[5, 9, 12], temps=[1.0, 1.4, 0.6], stage=0.7),
    dict(name='a-stream-early', ckpt='a', mode='stream', seed=8, steps=[4, 6, 10], temps=[0.9, 1.2, 0.8], stage=0.25),
    dict(name='b-stream', ckpt='b', mode='stream', seed=9, steps=[6, 8, 10], temps=[1.0, 1.2, 0.5], stage=0.5),
    dict(name='c-stream', ckpt='c', mode='stream', seed=10, steps=[8, 12], temps=[1.1, 0.7], stage=0.1),
    dict(name='a-greedy', ckpt='a', mode='greedy', seed=11, steps=[5, 8, 10], temps=None, stage=0.3),
    dict(name='c-greedy', ckpt='c', mode='greedy', seed=12, steps=[6, 9], temps=None, stage=0.2),
]


def run_generate(mod, ocnn, cfg, run, fixtures):
    """One official generate() with Tessera's stream; returns the per-step record."""
    arr = check_ocnn.arr
    model, ckpt = load_model(mod.OctGPT, cfg, fixtures)
    lo, hi = cfg['full'], cfg['stop']
    model.num_iters = list(run['steps'])
    model.start_temperature = [1e-30] * len(run['steps']) if run['mode'] == 'greedy' else list(run['temps'])
    model.remask_stage = run['stage']
    stream = Stream(run['seed'], lo)
    state = {}

    orig_fm, orig_mbo, orig_rm, orig_sample = model.forward_model, model.mask_by_order, model.get_remask, mod.sample
    records, nnum = [], {}
    prev = {'mask': None, 'depth': lo, 'i': 0}  # the loop position of the step being recorded

    def close_step():
        """After a step's draws: which nodes the official loop drew and why."""
        if 'ix' not in state:
            return
        d, i = prev['depth'], prev['i']
        n, T = nnum[d], run['steps'][d - lo]
        before = prev['mask'] if prev['mask'] is not None else torch.ones(n, dtype=torch.bool)
        after = state['masked_next']
        pred = before.clone() if i == T - 1 else (before ^ after)  # generate()'s mask_to_pred
        remask = state['remask'] if state['remask'] is not None else torch.zeros(n, dtype=torch.bool)
        drawn_nodes = (pred | remask).nonzero().squeeze(1)
        width = 1 if d < hi else cfg['bits']
        assert drawn_nodes.numel() * width == state['rows'], (drawn_nodes.numel(), width, state['rows'])
        records.append({'depth': d, 'step': i, 'maskLen': state['mask_len'], 'temperature': state['temperature'],
                        'nodes': drawn_nodes.int(), 'remasked': (remask & ~pred).nonzero().squeeze(1).int(),
                        'drawn': state['ix'].reshape(-1).int()})
        prev['mask'] = after
        prev['i'] += 1
        if prev['i'] == T:
            prev.update(mask=None, i=0, depth=d + 1)
        state.clear()

    def forward_model(*a, **k):
        close_step()
        nnum[prev['depth']] = int(a[1].nnum[prev['depth']])
        stream.step += 1
        state.update(remask=None, masked_next=None)
        return orig_fm(*a, **k)

    def mask_by_order(mask_len, orders):
        m = orig_mbo(mask_len, orders)
        state['masked_next'] = m.bool().clone()
        state['mask_len'] = int(mask_len.reshape(-1)[0]) if torch.is_tensor(mask_len) else int(mask_len)
        return m

    def get_remask(*a, **k):
        r = orig_rm(*a, **k)
        state['remask'] = r.clone()
        return r

    def sample(logits, top_k=None, top_p=None, temperature=1.0):
        ix = orig_sample(logits, top_k=top_k, top_p=top_p, temperature=temperature)
        state.update(temperature=float(temperature), rows=int(logits.shape[0]), ix=ix.clone())
        if run['mode'] == 'greedy' and logits.shape[0] > 0:  # the official draw is the argmax here
            assert torch.equal(ix, logits.argmax(dim=-1))
        return ix

    model.forward_model, model.mask_by_order, model.get_remask = forward_model, mask_by_order, get_remask
    mod.sample = sample
    orig_randperm, orig_multinomial = torch.randperm, torch.multinomial
    torch.randperm = stream.randperm
    if run['mode'] == 'stream':
        torch.multinomial = stream.multinomial
    try:
        octree = ocnn.octree.init_octree(hi, lo, 1, 'cpu')
        cond = torch.tensor([cfg['label']]) if cfg['classes'] > 1 else None
        vqvae = types.SimpleNamespace(quantizer=mod.BinarySphericalQuantizer(cfg['bits']))
        with torch.no_grad():
            out, vq_code = model.generate(octree, lo, hi, condition=cond, vqvae=vqvae)
        close_step()
    finally:
        torch.randperm, torch.multinomial = orig_randperm, orig_multinomial
        mod.sample = orig_sample
    assert len(records) == sum(run['steps'])

    flags = torch.cat([(out.children[d] >= 0).int() for d in range(lo, hi)])
    keys = {str(d): arr((out.keys[d] & ((1 << 48) - 1)).long()) for d in range(lo, hi + 1)}
    codes = (vq_code > 0).int()
    assert codes.shape == (int(out.nnum[hi]), cfg['bits'])
    o = {'heads': cfg['heads'], 'window': cfg['K'], 'dilation': cfg['D'], 'bufferSize': cfg['buffer'],
         'shiftWindows': cfg['swin'], 'fullDepth': lo, 'depthStop': hi}
    rec = {
        'name': run['name'], 'checkpoint': ckpt, 'options': o, 'label': cfg['label'], 'mode': run['mode'],
        'seed': run['seed'], 'steps': run['steps'], 'temperatures': run['temps'], 'remaskStage': run['stage'],
        'nnum': [int(out.nnum[d]) for d in range(lo, hi + 1)],
        'nnumNonEmpty': [int(out.nnum_nempty[d]) for d in range(lo, hi)],
        'splitFlags': arr(flags), 'keys': keys, 'codes': arr(codes.reshape(-1)),
        'minMargin': stream.min_margin if stream.draws else None, 'streamDraws': stream.draws,
        'stepRecords': [{'depth': r['depth'], 'step': r['step'], 'maskLen': r['maskLen'], 'temperature': r['temperature'],
                         'nodes': arr(r['nodes']), 'remasked': arr(r['remasked']), 'drawn': arr(r['drawn'])}
                        for r in records],
    }
    rem = sum(int(r['remasked'].numel()) for r in records)
    print(f"{run['name']}: depths {lo}..{hi} nnum {rec['nnum']}, {len(records)} steps, {rem} remasked draws, "
          f"{stream.draws} stream draws, min |p0-u| {stream.min_margin:.3g}")
    return rec


class StubOctree:
    """Only what generate() reads when the transformer is a stub: node counts and batch ids."""

    def __init__(self, d, n):
        self.batch_size, self.device = 1, 'cpu'
        self.nnum = torch.zeros(d + 1, dtype=torch.long)
        self.nnum[d] = n

    def batch_id(self, depth, nempty=False):
        return torch.zeros(int(self.nnum[depth]), dtype=torch.long)


def official_schedules(mod, pairs, t0=0.9, stage=0.7):
    """mask_by_order's mask_len per step and sample's temperature per step, from the official inline code."""
    vq = types.SimpleNamespace(embedding_channels=2, quantizer_type='bsq')
    model = mod.OctGPT(num_embed=12, num_heads=2, num_blocks=2, num_classes=1, patch_size=8, dilation=1, buffer_size=1,
                       drop_rate=0.0, pos_emb_type='SinPosEmb', norm_type='LayerNorm', use_checkpoint=False,
                       vqvae_config=vq, condition_type='none', condition_policy='concat').eval()
    model.forward_model = lambda x, *a, **k: torch.zeros(x.shape[0], 12)
    lens, temps = [], []
    orig_mbo, orig_sample = model.mask_by_order, mod.sample
    model.mask_by_order = lambda mask_len, orders: (lens.append(int(mask_len.reshape(-1)[0])), orig_mbo(mask_len, orders))[1]

    def sample(logits, top_k=None, top_p=None, temperature=1.0):
        temps.append(float(temperature))
        return orig_sample(logits, top_k=top_k, top_p=top_p, temperature=temperature)
    mod.sample = sample
    vqvae = types.SimpleNamespace(quantizer=mod.BinarySphericalQuantizer(2))
    out = []
    try:
        for n, T in pairs:
            lens.clear()
            temps.clear()
            model.num_iters, model.start_temperature, model.remask_stage = T, t0, stage
            with torch.no_grad():
                model.generate(StubOctree(3, n), 3, 3, vqvae=vqvae)
            assert len(lens) == T
            out.append((n, T, list(lens), list(temps)))
    finally:
        mod.sample = orig_sample
    return out


def schedule_pairs():
    pairs = [(n, T) for n in range(1, 65) for T in (1, 2, 3, 4, 5, 7, 8, 12, 16, 64)]
    pairs += [(4096, 128), (4096, 256), (25000, 128), (100000, 256), (262144, 256)]
    f32 = []
    n = np.arange(65, 5000)
    for T in range(2, 65):
        c = np.cos(math.pi / 2. * np.arange(1, T) / T)
        a = np.floor(n[:, None] * c[None, :])
        b = np.floor((n[:, None].astype(np.float32) * c[None, :].astype(np.float32)).astype(np.float32))
        f32 += [(int(x), T) for x in n[(a != b).any(axis=1)]]
    f32 = f32[::30]  # a spread of them (8,035 pairs in all)
    return pairs + f32, len(f32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repo', required=True, help='extracted octree-nn/octgpt')
    ap.add_argument('--ocnn', required=True, help='extracted octree-nn/ocnn-pytorch')
    ap.add_argument('--fixtures', required=True, help='test/fixtures/official (reads octgpt-*.pth.gz, writes the fixture)')
    args = ap.parse_args()

    check_octgpt.install_shims()
    install_generate_shims()
    ocnn = check_ocnn.load_ocnn(args.ocnn)
    repo = os.path.abspath(args.repo)
    if not os.path.isfile(os.path.join(repo, 'models', 'octgpt.py')):
        sys.exit(f'--repo {repo}: no models/octgpt.py there')
    sys.path.insert(0, repo)
    import models.octgpt as mod
    from models.vae import BinarySphericalQuantizer
    mod.BinarySphericalQuantizer = BinarySphericalQuantizer
    torch.set_num_threads(1)
    torch.manual_seed(0)

    cfgs = {c['name']: c for c in check_octgpt.CONFIGS}
    runs = [run_generate(mod, ocnn, cfgs[r['ckpt']], r, args.fixtures) for r in RUNS]

    pairs, n_f32 = schedule_pairs()
    sched = official_schedules(mod, pairs)
    lens = np.concatenate([np.array(s[2], dtype=np.int32) for s in sched])
    temps = {}
    for n, T, _, t in sched:
        temps.setdefault(str(T), t)
    for n, T, _, t in sched:
        assert temps[str(T)] == t
    philox = [{'seed': s, 'row': r, 'step': st, 'u': philox_uniform(s, r, st)}
              for s, r, st in [(0, 0, 0), (7, 3, 11), (2 ** 40 + 5, 2 ** 33 + 1, 123456789012), (10, 4095, STREAM + 4)]]
    path = os.path.join(args.fixtures, 'octgpt-generate.bin.gz')
    check_ocnn.write_fixture(path, {
        'source': 'octree-nn/octgpt 849d23a + ocnn-pytorch b12e899', 'runs': runs, 'philox': philox,
        'schedule': {'t0': 0.9, 'n': check_ocnn.arr(np.array([p[0] for p in sched], dtype=np.int32)),
                     'T': check_ocnn.arr(np.array([p[1] for p in sched], dtype=np.int32)),
                     'maskLen': check_ocnn.arr(lens), 'temperatures': temps, 'float32Pairs': n_f32},
    })
    print(f'schedules: {len(sched)} (n, T) pairs, {len(lens)} steps ({n_f32} pairs where float32 and float64 floors differ)')
    print(f'wrote {path}: {os.path.getsize(path)} bytes')


if __name__ == '__main__':
    main()
