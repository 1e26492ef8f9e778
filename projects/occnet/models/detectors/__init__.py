from occnet.models.detectors.bevformer_occ import BEVFormerOcc

__all__ = ['BEVFormerOcc']
