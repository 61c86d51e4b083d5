"""Evaluation: frozen features, KNN, linear probe, finetune / semi-supervised / supervised / transfer, stream
fusion, the protocol registry, one runner over checkpoints, the results records/table and reports."""

from skelssl.evaluation.features import encode_splits, extract_features
from skelssl.evaluation.finetune import FinetuneConfig, fresh_backbone
from skelssl.evaluation.fusion import StreamScores, fuse_logits, fuse_scores, load_scores, save_scores
from skelssl.evaluation.inputs import model_input
from skelssl.evaluation.knn import accuracy, knn_evaluate, nn1_cosine_predict, weighted_knn_predict
from skelssl.evaluation.linear import LinearProbeConfig, linear_probe, linear_probe_with_augmentation
from skelssl.evaluation.protocols import PROTOCOLS, EvalContext, Protocol, get_protocol, register_protocol
from skelssl.evaluation.report import markdown_report
from skelssl.evaluation.results import (ResultRecord, format_table, print_table, read_results, to_percent,
                                        write_results)
from skelssl.evaluation.runner import evaluate_checkpoints, evaluate_method, pick_device
from skelssl.evaluation.semi import class_balanced_subset
from skelssl.evaluation import transfer  # noqa: F401,E402 - registers the transfer protocols

__all__ = [
    "extract_features", "encode_splits", "model_input",
    "FinetuneConfig", "fresh_backbone", "class_balanced_subset",
    "StreamScores", "fuse_logits", "fuse_scores", "load_scores", "save_scores", "markdown_report",
    "accuracy", "knn_evaluate", "nn1_cosine_predict", "weighted_knn_predict",
    "LinearProbeConfig", "linear_probe", "linear_probe_with_augmentation",
    "PROTOCOLS", "EvalContext", "Protocol", "get_protocol", "register_protocol",
    "evaluate_checkpoints", "evaluate_method", "pick_device",
    "ResultRecord", "format_table", "print_table", "read_results", "to_percent", "write_results",
]
