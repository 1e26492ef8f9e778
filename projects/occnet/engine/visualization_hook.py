"""A hook that shows a few validation (and test) frames in TensorBoard after each evaluation."""
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from occnet.evaluation.occupancy_metric import sample_field, to_numpy
from occnet.registry import HOOKS
from occnet.visualization.topdown import render_gt_vs_pred
from occnet.visualization.voxel3d import ChaseCamera, render_chase_gt_vs_pred


@HOOKS.register_module()
class OccupancyVisualizationHook(Hook):
    """After each validation (and test) run, add to the runner's visualizer (TensorBoard and
    `vis_data/vis_image` with the default backends) the ground truth | prediction | errors
    renders of the first `max_frames` frames the main process evaluated: a top-down map and,
    with `chase`, a 3D chase-camera view. The validation sampler does not shuffle, so the
    same frames appear at every validation and show how the model improves.

    Image names: `val/<i>_topdown`, `val/<i>_3d` (and `test/...`); the step is the one the
    metric scalars get (the epoch when the log processor counts by epoch, else the iteration).

    Args:
        max_frames: frames drawn per evaluation (main process only).
        chase: also draw the 3D view (about 1.5 s a frame on a CPU core).
        scale: pixels per voxel of the top-down map.
        chase_width: width in pixels of each 3D panel.
    """

    priority = 'LOW'

    def __init__(self, max_frames=2, chase=True, scale=2, chase_width=400):
        self.max_frames = max_frames
        self.chase = chase
        self.scale = scale
        self.chase_width = chase_width
        self._frames = []

    def _collect(self, data_batch, outputs):
        if not is_main_process() or len(self._frames) >= self.max_frames:
            return
        for gt_sample, pred_sample in zip(data_batch['data_samples'], outputs):
            gt = sample_field(gt_sample, 'voxel_semantics')
            pred = sample_field(pred_sample, 'occ_pred')
            if gt is None or pred is None or len(self._frames) >= self.max_frames:
                continue
            token = sample_field(pred_sample, 'token') or sample_field(gt_sample, 'token')
            self._frames.append((str(token), to_numpy(gt).astype(np.uint8),
                                 to_numpy(pred).astype(np.uint8)))

    def _write(self, runner, mode):
        frames, self._frames = self._frames, []
        if not frames:
            return
        # the step LoggerHook gives the metric scalars, so images and scalars line up
        step = runner.epoch if mode == 'val' and runner.log_processor.by_epoch else runner.iter
        camera = ChaseCamera(size=(self.chase_width, int(round(self.chase_width * 0.625))))
        dataset = self.dataset(runner, mode)
        for i, (token, gt, pred) in enumerate(frames):
            runner.visualizer.add_image(
                f'{mode}/{i}_topdown',
                render_gt_vs_pred(gt, pred, token, self.scale, dataset=dataset), step)
            if self.chase:
                runner.visualizer.add_image(
                    f'{mode}/{i}_3d',
                    render_chase_gt_vs_pred(gt, pred, token, camera, dataset=dataset), step)

    @staticmethod
    def dataset(runner, mode):
        """The description of the dataset being evaluated: its `metainfo` when that is one
        (occnet.descriptions), else OpenScene's."""
        loader = runner.val_dataloader if mode == 'val' else runner.test_dataloader
        meta = getattr(getattr(loader, 'dataset', None), 'metainfo', None) or {}
        return meta if 'free_index' in meta else 'openscene'

    def before_val_epoch(self, runner):
        self._frames = []

    def before_test_epoch(self, runner):
        self._frames = []

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._collect(data_batch, outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._collect(data_batch, outputs)

    def after_val_epoch(self, runner, metrics=None):
        self._write(runner, 'val')

    def after_test_epoch(self, runner, metrics=None):
        self._write(runner, 'test')
