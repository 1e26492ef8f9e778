"""Models: importing this package registers every model part in occnet's MODELS registry."""
from occnet.models import (backbones, bev_encoders, detectors, losses, necks, occ_heads,  # noqa
                           view_transforms)
from occnet.models.data_preprocessor import OccDataPreprocessor  # noqa
