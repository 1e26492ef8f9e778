from occnet.models.occ_heads.bev_occ_head import BEVOccHead
from occnet.models.occ_heads.bevformer_occ_head import BEVFormerOccHead
from occnet.models.occ_heads.cascade_voxel_decoder import CascadeVoxelDecoder
from occnet.models.occ_heads.channel_to_height_head import ChannelToHeightHead
from occnet.models.occ_heads.flow_head import FlowHead
from occnet.models.occ_heads.image_semantic_head import ImageSemanticHead

__all__ = ['BEVFormerOccHead', 'BEVOccHead', 'CascadeVoxelDecoder', 'ChannelToHeightHead',
           'FlowHead', 'ImageSemanticHead']
