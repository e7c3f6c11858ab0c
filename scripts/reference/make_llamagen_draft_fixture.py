#!/usr/bin/python3
"""Writes test/fixtures/llamagen/gpt_draft.pt: a smaller LlamaGen for the
draft-model speculative tests, in the official DDP layout. It is the tiny
fixture GPT (gpt.pt) cut to its first layer, keeping the embeddings, the final
norm and the output head: a 1-layer drafter of the 2-layer target (like
self-speculative layer skipping), so its proposals are related to the target's
without being equal. Run after make_llamagen_fixtures.py:
    /usr/bin/python3 scripts/reference/make_llamagen_draft_fixture.py"""
import argparse
import os

import torch

DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'llamagen')


def main():
    ckpt = torch.load(os.path.join(DIR, 'gpt.pt'), map_location='cpu')
    sd = {k: v for k, v in ckpt['model'].items() if not k.startswith('layers.') or k.startswith('layers.0.')}
    args = argparse.Namespace(gpt_model='GPT-tiny-draft', image_size=12, downsample_size=2, cls_token_num=1,
                              vocab_size=sd['tok_embeddings.weight'].shape[0])
    torch.save({'model': sd, 'optimizer': {}, 'steps': 0, 'args': args}, os.path.join(DIR, 'gpt_draft.pt'))
    print('gpt_draft.pt:', len(sd), 'tensors')


if __name__ == '__main__':
    main()
