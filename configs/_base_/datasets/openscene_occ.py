# OpenScene occupancy: 8 cameras, dense (200, 200, 16) labels, infos from tools/collect_data.py.
dataset_name = 'openscene'  # its description (occnet/descriptions.py): classes, grid, cameras
dataset_type = 'OpenSceneOccDataset'
data_root = 'data/openscene/'
split = 'mini'  # 'trainval' for the full release
queue_length = 3  # frames per training sample, current one included
queue_window = 3  # history frames drawn at random from the 3 before the current one

# JPEGs are decoded straight to half size (1920x1080 -> 960x540), which replaces a full decode
# plus ResizeMultiViewImages(scale=0.5) at about half the cost (docs/benchmarks.md)
train_pipeline = [
    dict(type='LoadMultiViewImages', decode_scale=0.5),
    dict(type='PhotoMetricDistortionMultiViewImages'),
    dict(type='GridMaskMultiViewImages', prob=0.7),
    dict(type='LoadOccupancyLabel'),
    # dict(type='RandomFlipBEV'),  # optional BEV mirror; flips labels, flow and lidar2img
    dict(type='PackOccInputs'),
]
test_pipeline = [
    dict(type='LoadMultiViewImages', decode_scale=0.5),
    dict(type='LoadOccupancyLabel'),
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
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file=f'openscene_{split}_train.pkl',  # relative to data_root
                 pipeline=train_pipeline, queue_length=queue_length,
                 queue_window=queue_window))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='SceneContiguousSampler'),  # whole scenes per rank, in order
    collate_fn=dict(type='occnet.occ_collate'),  # scoped: the Runner looks it up at the root
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file=f'openscene_{split}_val.pkl',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader

val_evaluator = dict(type='OccupancyMetric')
test_evaluator = val_evaluator
