# Occ3D-nuScenes occupancy: 6 cameras at 1600x900, dense (200, 200, 16) labels with their
# camera masks (gts/<scene>/<token>/labels.npz) on a grid in each frame's ego frame
# (docs/data.md, section 8).
dataset_name = 'occ3d_nuscenes'  # its description (occnet/descriptions.py): classes, grid, cameras
dataset_type = 'Occ3DNuScenesDataset'
data_root = 'data/nuscenes/'  # the nuScenes root holding samples/ and gts/
# the CVPR 2023 challenge's infos; BEVDet's bevdetv2-nuscenes_infos_{train,val}.pkl and
# tools/create_occ3d_infos.py's occ3d_nuscenes_infos_{train,val}.pkl load as they are
train_ann_file = 'occ_infos_temporal_train.pkl'  # relative to data_root
val_ann_file = 'occ_infos_temporal_val.pkl'
queue_length = 4  # frames per training sample, current one included (the challenge baseline's)
queue_window = 4  # history frames drawn at random from the 4 before the current one

# full-resolution images; LoadOcc3DLabel adds `mask_camera`, which the Occ3D protocol
# evaluates on and which heads with use_camera_mask=True train on
train_pipeline = [
    dict(type='LoadMultiViewImages', dataset=dataset_name),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages', prob=0.7),
    dict(type='LoadOcc3DLabel', dataset=dataset_name),
    dict(type='PackOccInputs'),
]
test_pipeline = [
    dict(type='LoadMultiViewImages', dataset=dataset_name),
    dict(type='LoadOcc3DLabel', dataset=dataset_name),
    dict(type='PackOccInputs'),
]

train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    # DefaultSampler's indices, each seeding its sample's random draws (datasets/samplers.py)
    sampler=dict(type='SeededSampler', shuffle=True),
    collate_fn=dict(type='occnet.occ_collate'),  # scoped: the Runner looks it up at the root
    dataset=dict(type=dataset_type, data_root=data_root, ann_file=train_ann_file,
                 pipeline=train_pipeline, queue_length=queue_length,
                 queue_window=queue_window))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='SceneContiguousSampler'),  # whole scenes per rank, in order
    collate_fn=dict(type='occnet.occ_collate'),  # scoped: the Runner looks it up at the root
    dataset=dict(type=dataset_type, data_root=data_root, ann_file=val_ann_file,
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader

# The Occ3D protocol's mIoU (camera-visible voxels, one 18 x 18 confusion matrix summed over
# the split, mean over the classes 0-16 present) is `occ/protocol_miou` (= `occ/miou_masked`);
# `occ/miou` counts every voxel, which no paper reports. ray_iou=True casts SparseOcc's rays
# (the description's ray_protocol) from the origins the test-mode dataset attaches; it costs
# about a second a frame, so it is off here: tools/eval_occ.py --dataset occ3d --ray-iou
# scores the predictions tools/test.py --out-dir writes (docs/evaluation.md).
val_evaluator = dict(type='OccupancyMetric', dataset=dataset_name)
test_evaluator = val_evaluator
