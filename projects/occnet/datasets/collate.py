"""Batching of dataset items for the occupancy model."""
from occnet.registry import FUNCTIONS


@FUNCTIONS.register_module()
def occ_collate(batch):
    """List of items -> {'inputs': {'imgs': [B x uint8 (T, N, 3, H, W)]},
    'data_samples': [B x dict]}. Images are stacked later by OccDataPreprocessor on the
    model's device; data samples stay one dict per sample."""
    return dict(inputs=dict(imgs=[item['inputs']['imgs'] for item in batch]),
                data_samples=[item['data_samples'] for item in batch])
