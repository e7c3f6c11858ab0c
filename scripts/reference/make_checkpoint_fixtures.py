#!/usr/bin/python3
"""Writes small PyTorch checkpoints (zip and legacy formats), a safetensors
file written by an independent writer, and a hostile pickle, plus the
expected tensors as JSON, into test/fixtures/checkpoints/. Run with Debian's
PyTorch: /usr/bin/python3 scripts/reference/make_checkpoint_fixtures.py
The tests read only the committed outputs; they never need Python."""
import argparse
import collections
import json
import os
import pickle
import struct
import zipfile

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'checkpoints')
os.makedirs(OUT, exist_ok=True)
g = torch.Generator().manual_seed(1234)


def rand(*shape, dtype=torch.float32):
    return (torch.rand(*shape, generator=g) * 2 - 1).to(dtype)


def describe(sd):
    out = {}
    for k, t in sd.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            vals = t.view(torch.int16).to(torch.int32).bitwise_and(0xFFFF).flatten().tolist()
        elif t.dtype == torch.float16:
            vals = t.view(torch.int16).to(torch.int32).bitwise_and(0xFFFF).flatten().tolist()
        elif t.dtype == torch.bool:
            vals = [int(x) for x in t.flatten().tolist()]
        elif t.dtype == torch.int64:
            vals = [str(x) for x in t.flatten().tolist()]
        else:
            vals = t.flatten().tolist()
        out[k] = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'values': vals}
    return out


base = rand(6, 4)
sd = collections.OrderedDict()
sd['blocks.0.weight'] = torch.nn.Parameter(rand(5, 3))
sd['blocks.0.bias'] = rand(5)
sd['transposed'] = rand(4, 7).t()                 # non-contiguous strides
sd['view_a'] = base[1:3]                          # shares a storage with an offset
sd['view_b'] = base[:, 2]                         # strided view of the same storage
sd['half'] = rand(3, 3, dtype=torch.float16)
sd['bf16'] = rand(2, 5, dtype=torch.bfloat16)
sd['double'] = rand(3, dtype=torch.float64)
sd['long'] = torch.tensor([1, -2, 3, 2**40], dtype=torch.int64)
sd['int'] = torch.tensor([7, -8], dtype=torch.int32)
sd['short'] = torch.tensor([300, -300], dtype=torch.int16)
sd['char'] = torch.tensor([-5, 6], dtype=torch.int8)
sd['byte'] = torch.tensor([0, 255], dtype=torch.uint8)
sd['flag'] = torch.tensor([True, False, True])
sd['scalar'] = torch.tensor(3.5)
sd['empty'] = torch.zeros(0, 3)

expected = describe(sd)
with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump(expected, f)

ns = argparse.Namespace(lr=1e-4, depth=2, name='tiny')
torch.save(sd, os.path.join(OUT, 'plain_zip.pt'))
torch.save({'model': sd, 'steps': 1200, 'args': ns}, os.path.join(OUT, 'wrapped_zip.pt'))
# The official VAR trainer's checkpoint: the weights two levels down, next to the VAE and optimizer state.
torch.save({'epoch': 3, 'trainer': {'var_wo_ddp': sd, 'vae_local': {'w': torch.ones(2)}, 'var_opt': {'lr': 0.5}}, 'args': ns}, os.path.join(OUT, 'trainer_zip.pt'))
torch.save({'state_dict': sd}, os.path.join(OUT, 'legacy.pt'), _use_new_zipfile_serialization=False)


# A pickle that would run a shell command if it were executed as a program.
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /tmp/tessera-pwned',))


with open(os.path.join(OUT, 'evil.pkl'), 'wb') as f:
    pickle.dump({'weight': Evil()}, f, protocol=2)
# The same inside a torch zip archive (data.pkl replaced).
src = os.path.join(OUT, 'plain_zip.pt')
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(os.path.join(OUT, 'evil_zip.pt'), 'w', zipfile.ZIP_STORED) as zout:
    for item in zin.infolist():
        data = zin.read(item.filename)
        if item.filename.endswith('data.pkl'):
            data = pickle.dumps({'weight': Evil()}, protocol=2)
        zout.writestr(item, data)


# safetensors written independently of the TS writer: header JSON, then data.
def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs = []
    off = 0
    codes = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64',
             torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL', torch.float64: 'F64',
             torch.int16: 'I16', torch.int8: 'I8'}
    for k, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype in (torch.bfloat16, torch.float16):
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[k] = {'dtype': codes[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


write_safetensors(os.path.join(OUT, 'reference.safetensors'), sd, {'format': 'pt', 'source': 'make_checkpoint_fixtures.py'})
print('wrote fixtures to', os.path.normpath(OUT))
