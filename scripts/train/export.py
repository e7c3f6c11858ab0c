#!/usr/bin/python3
"""Copies the trained tiny VAR into models/tiny-var/ in the official layouts:
vae.pth and var.pth (torch.save zip, the keys and buffers of VAR's released
files) and vae.safetensors / var.safetensors, float16 (the model computes in
float32; halves the package), plus model.json (class names, image size and
the sampling settings the model was evaluated with).

    /usr/bin/python3 scripts/train/export.py [--cfg 3] [--top-k 0] [--top-p 0.9]"""
import argparse
import json
import os

import torch

import common as C


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cfg', type=float, default=3.0)
    ap.add_argument('--top-k', type=int, default=0)
    ap.add_argument('--top-p', type=float, default=0.9)
    ap.add_argument('--src', default=C.WORK)
    ap.add_argument('--dest', default=C.MODEL_DIR)
    a = ap.parse_args()
    os.makedirs(a.dest, exist_ok=True)
    _, _, classes = C.load_dataset()
    for name in ('vae', 'var'):
        sd = torch.load(os.path.join(a.src, f'{name}.pth'))
        C.save_torch(sd, os.path.join(a.dest, f'{name}.pth'), torch.float16)
        C.save_safetensors(sd, os.path.join(a.dest, f'{name}.safetensors'), torch.float16)
    meta = {
        'classes': classes, 'image_size': 32, 'schedule': list(C.SCHEDULE),
        'sampling': {'cfg': a.cfg, 'top_k': a.top_k, 'top_p': a.top_p},
        'trained_by': 'scripts/train/ (make_dataset.py, train_vqvae.py, train_var.py, train_classifier.py, export.py)',
    }
    with open(os.path.join(a.dest, 'model.json'), 'w') as f:
        f.write(json.dumps(meta, indent=1) + '\n')
    for n in sorted(os.listdir(a.dest)):
        print(n, os.path.getsize(os.path.join(a.dest, n)))


if __name__ == '__main__':
    main()
