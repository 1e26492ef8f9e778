"""Write the raw (not averaged) weights of a checkpoint trained with mmengine's EMAHook to a
checkpoint of their own. EMAHook saves the averaged weights as `state_dict` and the model's
own as `ema_state_dict` (keys prefixed `module.`).

    python benchmarks/fbocc_trials/raw_weights.py work_dirs/trials/ema/iter_420.pth \
        work_dirs/trials/ema/raw_420.pth
"""
import argparse

import torch


def raw_state_dict(checkpoint):
    """The model's own weights from an EMAHook checkpoint; KeyError names what is missing."""
    if 'ema_state_dict' not in checkpoint:
        raise KeyError('the checkpoint has no ema_state_dict: it was not trained with EMAHook')
    raw = {key[len('module.'):]: value for key, value in checkpoint['ema_state_dict'].items()
           if key.startswith('module.')}
    if set(raw) != set(checkpoint['state_dict']):
        raise KeyError('ema_state_dict and state_dict hold different parameters: '
                       f'{sorted(set(raw) ^ set(checkpoint["state_dict"]))[:5]}')
    return raw


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    args = parser.parse_args()
    checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    torch.save(dict(meta=checkpoint.get('meta', {}), state_dict=raw_state_dict(checkpoint)),
               args.out)


if __name__ == '__main__':
    main()
