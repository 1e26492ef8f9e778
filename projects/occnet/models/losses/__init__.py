from occnet.models.losses.occupancy_losses import OccCrossEntropyLoss, OccFocalLoss

__all__ = ['OccCrossEntropyLoss', 'OccFocalLoss']
