"""occnet: camera-only 3D semantic occupancy (OccNet / BEVFormer style) on OpenScene."""
__version__ = '0.1.0'
