#!/usr/bin/python3
"""An independent PyTorch reference for VAR inference (multi-scale VQVAE and
the VAR transformer), written from ../../../shared/spec/var.md. It works on a
flat state dict (the official checkpoint layout) with plain functions, reads
every architecture fact from tensor shapes, and runs in any float dtype
(the fixtures use float64 so that Tessera's float32 path is measured against
something more exact than itself).

Conformance targets (spec section 7): Phi table applied after the bicubic
upsample, PyTorch-exact area/bicubic, CFG rows cond-then-uncond with the
linear ramp, no k bias, L2-normalised q/k with exp(min(p, ln 100)) and
softmax scale 1, AdaLN chunk order g1,g2,s1,s2,b1,b2 with (1+s), GELU tanh,
LN eps 1e-6 without affine, GN 32 groups eps 1e-6, right/bottom pad before
the stride-2 conv, first-scale input = class embedding + pos_start."""
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

OFFICIAL_SCHEDULES = {
    680: (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),      # 256x256 models
    2240: (1, 2, 3, 4, 6, 9, 13, 18, 24, 32),    # 512x512 model (d36-s)
}
PHI_RATIO = 0.5         # quant_resi: not stored in the file (spec section 1)
GN_GROUPS, GN_EPS = 32, 1e-6
LN_EPS = 1e-6
MAX_SCALE_MUL = float(np.float32(math.log(100)))  # torch.log(torch.tensor(100)).item(): a float32 value


# ---------------------------------------------------------------- schedules

def solve_schedule(total, scales):
    """Every strictly increasing list of `scales` side lengths starting at 1
    whose squares sum to `total` (depth-first, smallest first)."""
    found = []

    def walk(prefix, left, need):
        if need == 0:
            if left == 0:
                found.append(tuple(prefix))
            return
        p = prefix[-1] + 1
        while p * p * need <= left:  # the rest are all >= p: need*p^2 <= left
            walk(prefix + [p], left - p * p, need - 1)
            p += 1

    if scales >= 1 and total >= 1:
        walk([1], total - 1, scales - 1)
    return found


def schedule_from_state(sd):
    """Rule (documented in lib/models/var/config.ts too): (1) the lvl_1L buffer,
    when present, gives the tokens per level, each a square pn^2; (2) otherwise
    the documented official schedule for L = pos_1LC's length when it has
    lvl_embed's number of scales; (3) otherwise the unique strictly increasing
    schedule starting at 1 with lvl_embed's number of scales and sum pn^2 = L;
    several or none is an error."""
    L = sd['pos_1LC'].shape[1]
    SN = sd['lvl_embed.weight'].shape[0]
    if 'lvl_1L' in sd:
        lv = sd['lvl_1L'].reshape(-1).tolist()
        counts = [lv.count(i) for i in range(SN)]
        pns = tuple(int(round(math.sqrt(c))) for c in counts)
        assert all(p * p == c for p, c in zip(pns, counts)), 'lvl_1L counts are not squares'
        return pns
    if L in OFFICIAL_SCHEDULES and len(OFFICIAL_SCHEDULES[L]) == SN:
        return OFFICIAL_SCHEDULES[L]
    cands = solve_schedule(L, SN)
    assert len(cands) == 1, f'schedule for L={L}, {SN} scales is ambiguous or impossible: {cands}'
    return cands[0]


def phi_index(si, SN, K):
    """PhiPartiallyShared: conv argmin |ticks - si/(SN-1)|, ticks =
    linspace(1/3/K, 1-1/3/K, K) in float64; numpy's argmin takes the first of
    equal values (the spec's exact ties at si=2 and 7 for SN=10)."""
    ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K)
    return int(np.argmin(np.abs(ticks - si / (SN - 1))))


# ---------------------------------------------------------------- resizing

def area_resize(x, out):
    """Adaptive average pooling: bin i covers [floor(i*in/out), ceil((i+1)*in/out))."""
    B, C, H, W = x.shape

    def bins(n):
        return [(i * n // out, -((-(i + 1) * n) // out)) for i in range(out)]
    y = x.new_empty(B, C, out, out)
    for i, (r0, r1) in enumerate(bins(H)):
        for j, (c0, c1) in enumerate(bins(W)):
            y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
    return y


def _cubic_weights(t, A=-0.75):
    def near(d):  # |d| <= 1
        return ((A + 2) * d - (A + 3)) * d * d + 1

    def far(d):   # 1 < |d| < 2
        return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _bicubic_matrix(n_in, n_out, dtype):
    """Row o holds the weights of output o over the inputs: src =
    (o+0.5)*in/out - 0.5 (not clamped), taps floor(src)-1..+2 clamped."""
    M = torch.zeros(n_out, n_in, dtype=torch.float64)
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        i0 = math.floor(src)
        for tap, w in enumerate(_cubic_weights(src - i0)):
            M[o, min(max(i0 - 1 + tap, 0), n_in - 1)] += w
    return M.to(dtype)


def bicubic_resize(x, out):
    Mh = _bicubic_matrix(x.shape[2], out, x.dtype)
    Mw = _bicubic_matrix(x.shape[3], out, x.dtype)
    return torch.einsum('oh,bchw,pw->bcop', Mh, x, Mw)


def check_resizers():
    """Our resizers against F.interpolate on float64, for the sizes VAR uses."""
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for n_in, n_out in [(16, 13), (16, 10), (16, 6), (16, 1), (5, 3), (5, 2), (32, 24), (32, 9), (7, 7)]:
        x = torch.randn(2, 3, n_in, n_in, generator=g, dtype=torch.float64)
        worst = max(worst, (area_resize(x, n_out) - F.interpolate(x, size=(n_out, n_out), mode='area')).abs().max().item())
    for n_in, n_out in [(1, 16), (2, 16), (13, 16), (3, 5), (2, 5), (24, 32), (5, 5)]:
        x = torch.randn(2, 3, n_in, n_in, generator=g, dtype=torch.float64)
        ref = F.interpolate(x, size=(n_out, n_out), mode='bicubic', align_corners=False)
        worst = max(worst, (bicubic_resize(x, n_out) - ref).abs().max().item())
    assert worst < 1e-12, f'resizers differ from F.interpolate by {worst}'
    return worst


# ---------------------------------------------------------------- VQVAE

def _count(sd, pattern):
    rx = re.compile(pattern)
    return 1 + max((int(m.group(1)) for k in sd for m in [rx.match(k)] if m), default=-1)


def vqvae_config(sd):
    ch = sd['encoder.conv_in.weight'].shape[0]
    levels = _count(sd, r'encoder\.down\.(\d+)\.')
    return {
        'ch': ch, 'levels': levels,
        'ch_mult': [sd[f'encoder.down.{i}.block.0.conv2.weight'].shape[0] // ch for i in range(levels)],
        'num_res_blocks': _count(sd, r'encoder\.down\.0\.block\.(\d+)\.'),
        'z_channels': sd['encoder.conv_out.weight'].shape[0],
        'vocab': sd['quantize.embedding.weight'].shape[0],
        'Cvae': sd['quantize.embedding.weight'].shape[1],
        'phi_convs': _count(sd, r'quantize\.quant_resi\.qresi_ls\.(\d+)\.'),
    }


def _conv(sd, name, x, stride=1):
    w = sd[name + '.weight']
    pad = 0 if stride == 2 else w.shape[-1] // 2
    return F.conv2d(x, w, sd[name + '.bias'], stride=stride, padding=pad)


def _gn(sd, name, x):
    return F.group_norm(x, GN_GROUPS, sd[name + '.weight'], sd[name + '.bias'], GN_EPS)


def _resnet(sd, p, x):
    h = _conv(sd, p + '.conv1', F.silu(_gn(sd, p + '.norm1', x)))
    h = _conv(sd, p + '.conv2', F.silu(_gn(sd, p + '.norm2', h)))
    short = _conv(sd, p + '.nin_shortcut', x) if p + '.nin_shortcut.weight' in sd else x
    return short + h


def _attn(sd, p, x):
    B, C, H, W = x.shape
    q, k, v = _conv(sd, p + '.qkv', _gn(sd, p + '.norm', x)).reshape(B, 3, C, H * W).unbind(1)
    w = torch.softmax(torch.einsum('bci,bcj->bij', q, k) * C ** -0.5, dim=2)  # over keys j
    h = torch.einsum('bcj,bij->bci', v, w).reshape(B, C, H, W)
    return x + _conv(sd, p + '.proj_out', h)


def _upsample2x(x):
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # out[i] = in[i//2]


def encode(sd, img):
    """img [B,3,H,W] in [-1,1] -> f = quant_conv(encoder(img)) [B,Cvae,h,w]."""
    cfg = vqvae_config(sd)
    h = _conv(sd, 'encoder.conv_in', img)
    for i in range(cfg['levels']):
        for j in range(cfg['num_res_blocks']):
            h = _resnet(sd, f'encoder.down.{i}.block.{j}', h)
            if f'encoder.down.{i}.attn.{j}.qkv.weight' in sd:
                h = _attn(sd, f'encoder.down.{i}.attn.{j}', h)
        if i != cfg['levels'] - 1:
            h = _conv(sd, f'encoder.down.{i}.downsample.conv', F.pad(h, (0, 1, 0, 1)), stride=2)
    h = _mid(sd, 'encoder', h)
    h = _conv(sd, 'encoder.conv_out', F.silu(_gn(sd, 'encoder.norm_out', h)))
    return _conv(sd, 'quant_conv', h)


def _mid(sd, part, h):
    h = _resnet(sd, f'{part}.mid.block_1', h)
    if f'{part}.mid.attn_1.qkv.weight' in sd:
        h = _attn(sd, f'{part}.mid.attn_1', h)
    return _resnet(sd, f'{part}.mid.block_2', h)


def decode(sd, f_hat):
    """f_hat [B,Cvae,h,w] -> image clamped to [-1,1]."""
    cfg = vqvae_config(sd)
    h = _conv(sd, 'decoder.conv_in', _conv(sd, 'post_quant_conv', f_hat))
    h = _mid(sd, 'decoder', h)
    for i in reversed(range(cfg['levels'])):
        for j in range(cfg['num_res_blocks'] + 1):
            h = _resnet(sd, f'decoder.up.{i}.block.{j}', h)
            if f'decoder.up.{i}.attn.{j}.qkv.weight' in sd:
                h = _attn(sd, f'decoder.up.{i}.attn.{j}', h)
        if i != 0:
            h = _conv(sd, f'decoder.up.{i}.upsample.conv', _upsample2x(h))
    h = _conv(sd, 'decoder.conv_out', F.silu(_gn(sd, 'decoder.norm_out', h)))
    return h.clamp(-1, 1)


def phi(sd, si, SN, h):
    k = phi_index(si, SN, vqvae_config(sd)['phi_convs'])
    return (1 - PHI_RATIO) * h + PHI_RATIO * _conv(sd, f'quantize.quant_resi.qresi_ls.{k}', h)


def nearest_codes(sd, z):
    """z [N,Cvae] -> (idx [N], margin [N]): plain L2 argmin, first index on
    ties; margin = second-smallest minus smallest distance (to flag near-ties)."""
    E = sd['quantize.embedding.weight'].to(z.dtype)
    d = ((z[:, None, :] - E[None, :, :]) ** 2).sum(-1)
    two = d.topk(2, dim=1, largest=False)
    return d.argmin(dim=1), two.values[:, 1] - two.values[:, 0]


def embed_codes(sd, idx, pn):
    """idx [B, pn*pn] row-major -> [B,Cvae,pn,pn]."""
    E = sd['quantize.embedding.weight']
    return E[idx].reshape(idx.shape[0], pn, pn, -1).permute(0, 3, 1, 2)


def add_scale(sd, si, schedule, f_hat, h):
    """f_hat += Phi_k(bicubic(h -> last)) (no resize at the last scale)."""
    SN, last = len(schedule), schedule[-1]
    if si != SN - 1:
        h = bicubic_resize(h, last)
    return f_hat + phi(sd, si, SN, h)


def quantize(sd, f, schedule):
    """f [B,Cvae,last,last] -> per-scale token ids [B,pn^2], f_hat, min VQ margin."""
    B, C = f.shape[:2]
    f_rest, f_hat, ids, margin = f.clone(), torch.zeros_like(f), [], math.inf
    for si, pn in enumerate(schedule):
        z = area_resize(f_rest, pn) if si != len(schedule) - 1 else f_rest
        idx, m = nearest_codes(sd, z.permute(0, 2, 3, 1).reshape(-1, C))
        margin = min(margin, m.min().item())
        idx = idx.reshape(B, pn * pn)
        ids.append(idx)
        before = f_hat
        f_hat = add_scale(sd, si, schedule, f_hat, embed_codes(sd, idx, pn))
        f_rest = f_rest - (f_hat - before)
    return ids, f_hat, margin


def fhat_from_ids(sd, ids, schedule):
    f_hat = None
    for si, (pn, idx) in enumerate(zip(schedule, ids)):
        h = embed_codes(sd, idx, pn)
        if f_hat is None:
            f_hat = torch.zeros(h.shape[0], h.shape[1], schedule[-1], schedule[-1], dtype=h.dtype)
        f_hat = add_scale(sd, si, schedule, f_hat, h)
    return f_hat


# ---------------------------------------------------------------- VAR transformer

def var_config(sd):
    C = sd['class_emb.weight'].shape[1]
    depth = _count(sd, r'blocks\.(\d+)\.')
    return {
        'depth': depth, 'C': C, 'heads': sd['blocks.0.attn.scale_mul_1H11'].shape[1],
        'classes': sd['class_emb.weight'].shape[0] - 1, 'vocab': sd['head.weight'].shape[0],
        'Cvae': sd['word_embed.weight'].shape[1], 'shared_aln': 'shared_ada_lin.1.weight' in sd,
        'schedule': schedule_from_state(sd),
    }


def _lin(sd, name, x):
    return F.linear(x, sd[name + '.weight'], sd.get(name + '.bias'))


def _ln(x):
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


class VarState:
    """Per-block KV caches (normalised k and v, appended per scale)."""

    def __init__(self, depth):
        self.k = [None] * depth
        self.v = [None] * depth


def _self_attn(sd, i, x, state, mask):
    B, L, C = x.shape
    H = sd[f'blocks.{i}.attn.scale_mul_1H11'].shape[1]
    p = f'blocks.{i}.attn'
    bias = torch.cat([sd[p + '.q_bias'], torch.zeros_like(sd[p + '.q_bias']), sd[p + '.v_bias']])
    q, k, v = F.linear(x, sd[p + '.mat_qkv.weight'], bias).view(B, L, 3, H, C // H).permute(2, 0, 3, 1, 4)
    mul = sd[p + '.scale_mul_1H11'].clamp_max(MAX_SCALE_MUL).exp()  # [1,H,1,1]
    q, k = F.normalize(q, dim=-1) * mul, F.normalize(k, dim=-1)
    if state is not None:
        if state.k[i] is not None:
            k, v = torch.cat([state.k[i], k], 2), torch.cat([state.v[i], v], 2)
        state.k[i], state.v[i] = k, v
    logits = q @ k.transpose(-1, -2)  # softmax scale 1 with l2-norm
    if mask is not None:
        logits = logits + mask
    o = torch.softmax(logits, dim=-1) @ v
    return _lin(sd, p + '.proj', o.transpose(1, 2).reshape(B, L, C))


def _block(sd, i, x, cond, state, mask):
    C = x.shape[-1]
    if 'shared_ada_lin.1.weight' in sd:
        g = cond + sd[f'blocks.{i}.ada_gss']                    # cond: [B,1,6,C]
    else:
        g = _lin(sd, f'blocks.{i}.ada_lin.1', F.silu(cond)).view(-1, 1, 6, C)
    g1, g2, s1, s2, b1, b2 = g.unbind(2)
    x = x + _self_attn(sd, i, _ln(x) * (1 + s1) + b1, state, mask) * g1
    h = _ln(x) * (1 + s2) + b2
    h = _lin(sd, f'blocks.{i}.ffn.fc2', F.gelu(_lin(sd, f'blocks.{i}.ffn.fc1', h), approximate='tanh'))
    return x + h * g2


def _cond(sd, labels):
    """Class rows; label < 0 means the null class (the last row)."""
    null = sd['class_emb.weight'].shape[0] - 1
    labels = torch.where(labels < 0, torch.full_like(labels, null), labels)
    return sd['class_emb.weight'][labels]


def _block_cond(sd, c):
    if 'shared_ada_lin.1.weight' in sd:
        C = c.shape[-1]
        return _lin(sd, 'shared_ada_lin.1', F.silu(c)).view(-1, 1, 6, C)
    return c


def _head(sd, x, c):
    C = x.shape[-1]
    s, b = _lin(sd, 'head_nm.ada_lin.1', F.silu(c)).view(-1, 1, 2, C).unbind(2)
    return _lin(sd, 'head', _ln(x) * (1 + s) + b)


def _level_pos(sd, schedule):
    lvl = torch.cat([torch.full((pn * pn,), si) for si, pn in enumerate(schedule)])
    return sd['lvl_embed.weight'][lvl] + sd['pos_1LC'][0]  # [L, C]


def var_inputs(sd, labels, fhat_inputs, schedule):
    """Token embeddings for all L tokens: the start token, then
    word_embed(area(f_hat)) for scales 1.. (fhat_inputs[k-1] [B,pn_k^2,Cvae])."""
    c = _cond(sd, labels)
    lp = _level_pos(sd, schedule)
    first = c[:, None, :] + sd['pos_start'][0] + lp[:1]
    rest = [_lin(sd, 'word_embed', t) for t in fhat_inputs]
    return torch.cat([first] + rest, 1) + torch.cat([torch.zeros_like(lp[:1]), lp[1:]])[None]


def logits_full(sd, labels, fhat_inputs, schedule):
    """One pass over all L tokens with the training block-causal mask."""
    x = var_inputs(sd, labels, fhat_inputs, schedule)
    lvl = torch.cat([torch.full((pn * pn,), si) for si, pn in enumerate(schedule)])
    mask = torch.zeros(len(lvl), len(lvl), dtype=x.dtype).masked_fill(lvl[None, :] > lvl[:, None], -math.inf)
    c = _cond(sd, labels)
    cb = _block_cond(sd, c)
    for i in range(var_config(sd)['depth']):
        x = _block(sd, i, x, cb, None, mask)
    return _head(sd, x, c)


def next_inputs(sd, f_hat, pn):
    return area_resize(f_hat, pn).flatten(2).transpose(1, 2)  # [B, pn^2, Cvae]


def teacher_forced(sd, vae, labels, ids, cfg_scale):
    """Per-scale inference with KV caches on 2B rows (cond then uncond), fed
    the given token ids: the raw logits [2B,pn^2,V] and the guided logits."""
    conf = var_config(sd)
    sch, SN, B = conf['schedule'], len(conf['schedule']), labels.shape[0]
    c = _cond(sd, torch.cat([labels, torch.full_like(labels, -1)]))
    cb = _block_cond(sd, c)
    lp = _level_pos(sd, sch)
    state, begin = VarState(conf['depth']), 0
    x = c[:, None, :] + sd['pos_start'][0] + lp[:1]
    f_hat = torch.zeros(B, conf['Cvae'], sch[-1], sch[-1], dtype=c.dtype)
    raw, guided = [], []
    for si, pn in enumerate(sch):
        for i in range(conf['depth']):
            x = _block(sd, i, x, cb, state, None)
        lg = _head(sd, x, c)
        t = cfg_scale * si / (SN - 1)
        raw.append(lg)
        guided.append((1 + t) * lg[:B] - t * lg[B:])
        f_hat = add_scale(vae, si, sch, f_hat, embed_codes(vae, ids[si], pn))
        begin += pn * pn
        if si != SN - 1:
            nxt = sch[si + 1]
            x = _lin(sd, 'word_embed', next_inputs(vae, f_hat, nxt)) + lp[begin:begin + nxt * nxt]
            x = torch.cat([x, x])
    return raw, guided, f_hat


def generate_greedy(sd, vae, labels, cfg_scale, keep=None, src_ids=None, smooth=None):
    """Generation with the CFG ramp where every choice is deterministic:
    top_k=1 (argmax of the guided logits), or with smooth=(top_k, seed) the
    more_smooth soft latent over the top_k entries with Gumbel noise from
    philox_uniform (image b: seed + b). keep[si] [pn^2] (1 = keep) and src_ids
    teacher-force source tokens as the zero-shot edit demo does. Returns the
    token ids per scale (argmax, source ids where kept), the smallest decision
    margin seen (top-1/top-2 gap, or the k-th/(k+1)-th gap with smooth, over
    generated positions), and f_hat."""
    conf = var_config(sd)
    sch, SN, B = conf['schedule'], len(conf['schedule']), labels.shape[0]
    c = _cond(sd, torch.cat([labels, torch.full_like(labels, -1)]))
    cb = _block_cond(sd, c)
    lp = _level_pos(sd, sch)
    E = vae['quantize.embedding.weight']
    state, begin, ids, gap = VarState(conf['depth']), 0, [], math.inf
    x = c[:, None, :] + sd['pos_start'][0] + lp[:1]
    f_hat = torch.zeros(B, conf['Cvae'], sch[-1], sch[-1], dtype=c.dtype)
    for si, pn in enumerate(sch):
        for i in range(conf['depth']):
            x = _block(sd, i, x, cb, state, None)
        lg = _head(sd, x, c)
        ratio = si / (SN - 1)
        t = cfg_scale * ratio
        g = (1 + t) * lg[:B] - t * lg[B:]
        k = 1 if smooth is None else smooth[0]
        free = torch.ones(pn * pn, dtype=torch.bool) if keep is None else keep[si] == 0
        if free.any():
            top = g[:, free].topk(k + 1, dim=-1).values
            gap = min(gap, (top[..., k - 1] - top[..., k]).min().item())
        idx = g.argmax(-1)
        if smooth is None:
            h = embed_codes(vae, idx, pn)
        else:
            h = smooth_latent(g, smooth[0], smooth[1], si, ratio, E).transpose(1, 2).reshape(B, -1, pn, pn)
        if keep is not None:  # h = gt*m + pred*(1-m) before the Phi update
            m = keep[si].to(h.dtype).view(1, 1, pn, pn)
            h = embed_codes(vae, src_ids[si], pn) * m + h * (1 - m)
            idx = torch.where(keep[si].bool()[None], src_ids[si], idx)
        ids.append(idx)
        f_hat = add_scale(vae, si, sch, f_hat, h)
        begin += pn * pn
        if si != SN - 1:
            nxt = sch[si + 1]
            x = _lin(sd, 'word_embed', next_inputs(vae, f_hat, nxt)) + lp[begin:begin + nxt * nxt]
            x = torch.cat([x, x])
    return ids, gap, f_hat


# ---------------------------------------------------------------- more_smooth and editing

GUMBEL_ROWS = 2 ** 32   # lib/models/var/smooth.ts: Gumbel draws use Philox rows above the sampler's


def philox_uniform(seed, rows, step):
    """Philox4x32-10 (Salmon et al. 2011) as documented in
    native/include/tessera/sampling.h: key (seed lo, hi), counter (row lo, row
    hi, step lo, step hi); a double from the top 53 bits of words 1:0."""
    M = np.uint64(0xFFFFFFFF)
    rows = np.asarray(rows, dtype=np.uint64)
    c0, c1 = rows & M, rows >> np.uint64(32)
    c2 = np.full_like(rows, step & 0xFFFFFFFF)
    c3 = np.full_like(rows, step >> 32)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1, c3, c0, c2 = p1 & M, p0 & M, n0, n2
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    bits = (c1 << np.uint64(32)) | c0
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def smooth_latent(g, top_k, seed, si, ratio, E):
    """more_smooth (official gumbel_softmax_with_rng on the top-k-filtered
    logits): softmax((g*(1+ratio) + G)/tau) @ E, G = -log(-log(1-U)),
    tau = max(0.27*(1-0.95*ratio), 0.005). g [B,n,V] -> [B,n,Cvae]."""
    B, n, V = g.shape
    kth = g.topk(top_k, dim=-1).values[..., -1:]
    tau = max(0.27 * (1 - ratio * 0.95), 0.005)
    out = []
    for b in range(B):
        u = philox_uniform(seed + b, GUMBEL_ROWS + np.arange(n * V), si).reshape(n, V)
        gum = -torch.from_numpy(-np.log1p(-u)).log().to(g.dtype)
        z = ((g[b] * (1 + ratio) + gum) / tau).masked_fill(g[b] < kth[b], -math.inf)
        out.append(torch.softmax(z, -1) @ E.to(g.dtype))
    return torch.stack(out)


def edit_mask(box, width, height, side, inpaint):
    """The demo's get_edit_mask from a pixel box x0,y0,x1,y1 (Python round)."""
    x0, y0, x1, y1 = box
    m = torch.zeros(side, side)
    m[round(y0 / height * side):round(y1 / height * side), round(x0 / width * side):round(x1 / width * side)] = 1
    return 1 - m if inpaint else m


def scale_masks(mask, schedule):
    """The demo's replace_embedding masks: bilinear (align_corners=False) to
    pn x pn, > 0.5, all ones where pn*pn <= 3."""
    out = []
    for pn in schedule:
        r = F.interpolate(mask[None, None].float(), size=(pn, pn), mode='bilinear', align_corners=False).gt(0.5).int()
        if pn * pn <= 3:
            r.fill_(1)
        out.append(r.reshape(pn * pn))
    return out
