"""Evaluation: frozen features, KNN, linear probe, the protocol registry, one runner over checkpoints, and the
results records/table."""

from skelssl.evaluation.features import encode_splits, extract_features
from skelssl.evaluation.knn import accuracy, knn_evaluate, nn1_cosine_predict, weighted_knn_predict
from skelssl.evaluation.linear import LinearProbeConfig, linear_probe, linear_probe_with_augmentation
from skelssl.evaluation.protocols import PROTOCOLS, EvalContext, Protocol, get_protocol, register_protocol
from skelssl.evaluation.results import (ResultRecord, format_table, print_table, read_results, to_percent,
                                        write_results)
from skelssl.evaluation.runner import evaluate_checkpoints, evaluate_method, pick_device

__all__ = [
    "extract_features", "encode_splits",
    "accuracy", "knn_evaluate", "nn1_cosine_predict", "weighted_knn_predict",
    "LinearProbeConfig", "linear_probe", "linear_probe_with_augmentation",
    "PROTOCOLS", "EvalContext", "Protocol", "get_protocol", "register_protocol",
    "evaluate_checkpoints", "evaluate_method", "pick_device",
    "ResultRecord", "format_table", "print_table", "read_results", "to_percent", "write_results",
]
