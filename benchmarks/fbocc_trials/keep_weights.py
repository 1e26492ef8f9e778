"""Keep only the parameters under the given prefixes of a checkpoint's state_dict, for a
partial start (`load_from` with `allow_partial_checkpoint = True`).

    python benchmarks/fbocc_trials/keep_weights.py work_dirs/pretrain/run/iter_840.pth \
        work_dirs/pretrain/pre_fb.pth img_backbone. img_neck. bev_encoder.view_transform.depth_net.
"""
import argparse

import torch


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
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('prefixes', nargs='+')
    args = parser.parse_args()
    checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    kept = keep_prefixes(checkpoint['state_dict'], args.prefixes)
    print(f'{len(kept)} of {len(checkpoint["state_dict"])} tensors kept')
    torch.save(dict(meta=checkpoint.get('meta', {}), state_dict=kept), args.out)


if __name__ == '__main__':
    main()
