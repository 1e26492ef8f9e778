from occnet.models.occ_heads.bev_occ_head import BEVOccHead

__all__ = ['BEVOccHead']
