from occnet.models.losses.depth_loss import DepthBinLoss
from occnet.models.losses.flow_losses import FlowL1Loss
from occnet.models.losses.lovasz_softmax import LovaszSoftmaxLoss
from occnet.models.losses.occupancy_losses import (OccCrossEntropyLoss, OccFocalLoss,
                                                     OccupiedFocalLoss)
from occnet.models.losses.scene_class_affinity import GeometryScalLoss, SemanticScalLoss

__all__ = ['DepthBinLoss', 'FlowL1Loss', 'GeometryScalLoss', 'LovaszSoftmaxLoss',
           'OccCrossEntropyLoss', 'OccFocalLoss', 'OccupiedFocalLoss', 'SemanticScalLoss']
