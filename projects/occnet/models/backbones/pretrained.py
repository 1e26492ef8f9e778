"""Loading ImageNet weights into a backbone, offline-first with a clear error."""
import os

import torch
import torchvision


def load_backbone_weights(backbone, arch, weights):
    """Load ImageNet weights into a TorchvisionResNet.

    Args:
        backbone: the TorchvisionResNet (its `stem` and `stages` get the weights).
        arch: torchvision architecture name, e.g. 'resnet50'.
        weights: a local .pth path, or a torchvision weights name ('IMAGENET1K_V1' or
            'ResNet50_Weights.IMAGENET1K_V1'), fetched through torchvision's cache.
    """
    if os.path.isfile(str(weights)):
        state = torch.load(weights, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
    else:
        entry = torchvision.models.get_model_weights(arch)[str(weights).split('.')[-1]]
        try:
            state = entry.get_state_dict(progress=False)
        except Exception as err:  # offline machines cannot download
            raise RuntimeError(
                f'could not load backbone weights {weights!r} ({err}). Download {entry.url} '
                f'on a machine with internet and set the backbone `weights` to its local '
                f'path.') from err
    mapped = {}
    for key, val in state.items():
        if key.startswith('conv1.'):
            mapped['stem.0.' + key[len('conv1.'):]] = val
        elif key.startswith('bn1.'):
            mapped['stem.1.' + key[len('bn1.'):]] = val
        elif key.startswith('layer'):
            mapped[f'stages.{int(key[5]) - 1}.' + key.split('.', 1)[1]] = val
    missing, _ = backbone.load_state_dict(mapped, strict=False)
    missing = [key for key in missing if '.conv_offset.' not in key]  # DCN offsets start at 0
    if missing:
        raise RuntimeError(f'backbone weights {weights!r} lack {len(missing)} tensors of '
                           f'{arch}, e.g. {missing[:3]}')
    return backbone
