"""Write part of a checkpoint's weights to a checkpoint of their own.

    # the raw (not averaged) weights of a run with mmengine's EMAHook
    python benchmarks/fbocc_trials/checkpoint_parts.py raw work_dirs/trials/ema/iter_420.pth \
        work_dirs/trials/ema/raw_420.pth
    # only the parameters under the given prefixes, for a partial start (`load_from` with
    # `allow_partial_checkpoint = True`, or tools/train.py --allow-partial)
    python benchmarks/fbocc_trials/checkpoint_parts.py keep work_dirs/pretrain/run/iter_840.pth \
        work_dirs/pretrain/pre_fb.pth img_backbone. img_neck. bev_encoder.view_transform.depth_net.
"""
import argparse

import torch

from occnet.engine.checkpoint_fit import strip_prefix


def raw_state_dict(checkpoint):
    """The model's own weights from an EMAHook checkpoint, which saves the averaged weights
    as `state_dict` and the model's as `ema_state_dict` (keys prefixed `module.`); KeyError
    names what is missing."""
    if 'ema_state_dict' not in checkpoint:
        raise KeyError('the checkpoint has no ema_state_dict: it was not trained with EMAHook')
    raw = {strip_prefix(key): value for key, value in checkpoint['ema_state_dict'].items()
           if key.startswith('module.')}
    if set(raw) != set(checkpoint['state_dict']):
        raise KeyError('ema_state_dict and state_dict hold different parameters: '
                       f'{sorted(set(raw) ^ set(checkpoint["state_dict"]))[:5]}')
    return raw


def keep_prefixes(state_dict, prefixes):
    """The entries of state_dict whose key starts with one of prefixes; ValueError if a
    prefix matches none (a typo would otherwise start that part from scratch unnoticed)."""
    unmatched = [p for p in prefixes if not any(key.startswith(p) for key in state_dict)]
    if unmatched:
        raise ValueError(f'no parameter starts with {unmatched}; the checkpoint has '
                         f'{sorted({key.split(".")[0] for key in state_dict})}')
    return {key: value for key, value in state_dict.items() if key.startswith(tuple(prefixes))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('part', choices=('raw', 'keep'))
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('prefixes', nargs='*', help='keep: the prefixes to keep')
    args = parser.parse_args()
    if (args.part == 'keep') != bool(args.prefixes):
        parser.error('give prefixes with keep, and none with raw')
    checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    state = (raw_state_dict(checkpoint) if args.part == 'raw'
             else keep_prefixes(checkpoint['state_dict'], args.prefixes))
    print(f'{len(state)} of {len(checkpoint["state_dict"])} tensors written to {args.out}')
    torch.save(dict(meta=checkpoint.get('meta', {}), state_dict=state), args.out)


if __name__ == '__main__':
    main()
