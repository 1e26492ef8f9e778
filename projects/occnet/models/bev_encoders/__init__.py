from occnet.models.bev_encoders.bev_resnet import BEVResNetFPN
from occnet.models.bev_encoders.encoder import BEVFormerEncoder
from occnet.models.bev_encoders.fbocc_encoder import FBOccEncoder
from occnet.models.bev_encoders.lss_encoder import LSSBEVEncoder
from occnet.models.bev_encoders.spatial_cross_attention import SpatialCrossAttention
from occnet.models.bev_encoders.temporal_self_attention import TemporalSelfAttention

__all__ = ['BEVFormerEncoder', 'BEVResNetFPN', 'FBOccEncoder', 'LSSBEVEncoder',
           'SpatialCrossAttention', 'TemporalSelfAttention']
