"""Renders of occupancy grids for humans: top-down class maps, gt/prediction comparisons and
flow maps."""
from occnet.visualization.flow import (render_flow_gt_vs_pred, save_flow_gt_vs_pred,
                                       topdown_flow_map)
from occnet.visualization.topdown import (column_top_classes, render_gt_vs_pred,
                                          save_gt_vs_pred, shade_by_height,
                                          topdown_class_map, topdown_error_map)

__all__ = [
    'column_top_classes', 'render_flow_gt_vs_pred', 'render_gt_vs_pred', 'save_flow_gt_vs_pred',
    'save_gt_vs_pred', 'shade_by_height', 'topdown_class_map', 'topdown_error_map',
    'topdown_flow_map',
]
