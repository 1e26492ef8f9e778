"""Occupancy evaluation: pure metric functions, the mmengine metric, tables and files."""
from occnet.evaluation.occupancy_metric import OccupancyMetric, flatten_summary, sum_unique_frames
from occnet.evaluation.occupancy_metrics import (class_ious, confusion_matrix,
                                                 summarize_confusion, summarize_split)
from occnet.evaluation.report import (format_markdown, format_table, load_flow_pair,
                                      load_prediction, prediction_path, save_prediction,
                                      write_json, write_markdown)

__all__ = [
    'OccupancyMetric', 'class_ious', 'confusion_matrix', 'flatten_summary', 'format_markdown',
    'format_table', 'load_flow_pair', 'load_prediction', 'prediction_path', 'save_prediction',
    'sum_unique_frames',
    'summarize_confusion', 'summarize_split', 'write_json', 'write_markdown',
]
