#!/usr/bin/python3
"""Writes PyTorch's own resize outputs for test/nn.test.ts into
test/fixtures/resize/ (float32, CPU, torch.nn.functional.interpolate):
    /usr/bin/python3 scripts/reference/make_resize_fixtures.py
The tests read only the committed files; they never need Python.

Modes: nearest, area (adaptive_avg_pool2d), bicubic and bilinear, both with
align_corners=False and no antialias. For each size pair (a, b) there are two
cases: a [1, 2, a, b] input resized to [b, a] (H shrinks or grows while W does
the opposite) and a square [1, 2, a, a] input resized to [b, b].
Files:
  cases.json  {"cases": [{"in": [N,C,H,W], "out": [N,C,Ho,Wo], "input": offset,
               "outputs": {mode: offset}}], "modes": [...], "torch": version}
  data.bin    every array as little-endian float32, at the element offsets above
"""
import json
import os
import struct

import torch
import torch.nn.functional as F

PAIRS = [(16, 13), (16, 10), (16, 6), (1, 16), (2, 16), (13, 16), (7, 3), (16, 8), (5, 5)]
MODES = ["nearest", "area", "bicubic", "bilinear"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = os.path.join(here, "..", "..", "test", "fixtures", "resize")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(20240601)
    data = []
    cases = []

    def put(t):
        off = len(data)
        data.extend(t.contiguous().view(-1).tolist())
        return off

    for a, b in PAIRS:
        for shape_in, size in (([1, 2, a, b], (b, a)), ([1, 2, a, a], (b, b))):
            x = torch.randn(*shape_in, generator=gen, dtype=torch.float32)
            case = {"in": shape_in, "out": [1, 2, size[0], size[1]], "input": put(x), "outputs": {}}
            for mode in MODES:
                kw = {} if mode in ("nearest", "area") else {"align_corners": False}
                y = F.interpolate(x, size=size, mode=mode, **kw)
                case["outputs"][mode] = put(y)
            cases.append(case)
    with open(os.path.join(out_dir, "data.bin"), "wb") as f:
        f.write(struct.pack("<%df" % len(data), *data))
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "modes": MODES, "cases": cases}, f, indent=1)
        f.write("\n")
    print("wrote %d cases, %d floats" % (len(cases), len(data)))


if __name__ == "__main__":
    main()
