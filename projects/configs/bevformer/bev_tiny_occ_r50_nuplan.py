# Alias kept at the path of the OpenScene baseline release; the canonical config is below.
_base_ = ['../../../configs/bevformer_occ/bevformer-occ-tiny_r50-fpn_8xb1-24e_openscene.py']
