"""Evaluation protocols on frozen features (KNN, linear probe) and the results records/table."""

from skelssl.evaluation.features import extract_features
from skelssl.evaluation.knn import accuracy, knn_evaluate, nn1_cosine_predict, weighted_knn_predict
from skelssl.evaluation.linear import LinearProbeConfig, linear_probe, linear_probe_with_augmentation
from skelssl.evaluation.results import (ResultRecord, format_table, print_table, read_results, to_percent,
                                        write_results)

__all__ = [
    "extract_features",
    "accuracy", "knn_evaluate", "nn1_cosine_predict", "weighted_knn_predict",
    "LinearProbeConfig", "linear_probe", "linear_probe_with_augmentation",
    "ResultRecord", "format_table", "print_table", "read_results", "to_percent", "write_results",
]
