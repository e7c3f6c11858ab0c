#!/usr/bin/python3
"""Copies the trained tiny VAR into models/tiny-var/ in the official layouts:
vae.pth and var.pth (torch.save zip, the keys and buffers of VAR's released
files) and vae.safetensors / var.safetensors, float16 (the model computes in
float32; halves the package), the classifier (train_classifier.py --out,
when given; model.json names the classifier for the image size), plus model.json (class names, image size (the dataset's), the
schedule (the VAR's) and the sampling settings the model was evaluated with).

    /usr/bin/python3 scripts/train/export.py [--cfg 3] [--top-k 0] [--top-p 0.9] [--classifier PATH]"""
import argparse
import json
import os
import shutil

import torch

import common as C


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cfg', type=float, default=3.0)
    ap.add_argument('--top-k', type=int, default=0)
    ap.add_argument('--top-p', type=float, default=0.9)
    ap.add_argument('--src', default=C.WORK)
    ap.add_argument('--dest', default=C.MODEL_DIR)
    ap.add_argument('--dataset', default=C.DATASET_VAR)
    ap.add_argument('--classifier', help='a classifier.safetensors to copy in (train_classifier.py --out)')
    a = ap.parse_args()
    os.makedirs(a.dest, exist_ok=True)
    x, _, classes = C.load_dataset(a.dataset)
    size = x.shape[-1]
    var = torch.load(os.path.join(a.src, 'var.pth'))
    lvl = var['lvl_1L'].reshape(-1).tolist()
    schedule = [int(round(lvl.count(s) ** 0.5)) for s in range(int(max(lvl)) + 1)]
    classifier = 'classifier.safetensors' if size == 32 else f'classifier-{size}.safetensors'
    if a.classifier:
        shutil.copyfile(a.classifier, os.path.join(a.dest, classifier))
    for name in ('vae', 'var'):
        sd = torch.load(os.path.join(a.src, f'{name}.pth'))
        C.save_torch(sd, os.path.join(a.dest, f'{name}.pth'), torch.float16)
        C.save_safetensors(sd, os.path.join(a.dest, f'{name}.safetensors'), torch.float16)
    meta = {
        'classes': classes, 'image_size': size, 'schedule': schedule, 'classifier': classifier,
        'sampling': {'cfg': a.cfg, 'top_k': a.top_k, 'top_p': a.top_p},
        'trained_by': 'scripts/train/ (make_dataset.py, train_vqvae.py, train_var.py, train_classifier.py, export.py)',
    }
    with open(os.path.join(a.dest, 'model.json'), 'w') as f:
        f.write(json.dumps(meta, indent=1) + '\n')
    for n in sorted(os.listdir(a.dest)):
        print(n, os.path.getsize(os.path.join(a.dest, n)))


if __name__ == '__main__':
    main()
