from occnet.models.backbones.resnet import TorchvisionResNet

__all__ = ['TorchvisionResNet']
