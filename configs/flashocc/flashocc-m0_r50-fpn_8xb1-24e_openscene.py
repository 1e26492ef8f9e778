# FlashOcc M0 on OpenScene: FlashOcc's fastest published model (`flashocc-r50-M0.py`, 31.95
# mIoU on Occ3D-nuScenes against M1's 32.08, 198 against 153 FPS in its TensorRT test). It is
# this directory's FlashOcc config (M1) with M0's narrower BEV side: the BEV ResNet-FPN ends
# in 128 channels instead of 256, and the head's 3x3 conv has 128 (Linear 256, Linear to
# 16 x classes). Everything else, including the 88 depth bins of 0.5 m (M0: 44 of
# 1 m), is the M1 config's. Deviations: docs/model_zoo.md.
_base_ = ['./flashocc_r50-fpn_8xb1-24e_openscene.py']

bev_dims = 128  # M0: FPN_LSS out_channels=128, BEVOCCHead2D in_dim=out_dim=128

model = dict(
    bev_encoder=dict(bev_backbone=dict(out_channels=bev_dims)),
    occ_head=dict(in_channels=bev_dims, hidden_dims=bev_dims),
)
