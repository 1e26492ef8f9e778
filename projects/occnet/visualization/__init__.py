"""Renders of occupancy grids for humans: top-down class maps and gt/prediction comparisons."""
from occnet.visualization.topdown import (column_top_classes, render_gt_vs_pred,
                                          save_gt_vs_pred, shade_by_height,
                                          topdown_class_map, topdown_error_map)

__all__ = [
    'column_top_classes', 'render_gt_vs_pred', 'save_gt_vs_pred', 'shade_by_height',
    'topdown_class_map', 'topdown_error_map',
]
