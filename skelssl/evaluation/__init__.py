"""Evaluation: frozen features, KNN, linear probe, finetune / semi-supervised / supervised / transfer, stream
fusion, prediction, the protocol catalog, one runner over checkpoints, the results records/table and reports.

Everything here takes a `Backbone` (an encoder and what its input depends on), never a training method:
skelssl.methods is not imported by this package."""

from skelssl.evaluation.backbone import Backbone, ClassifierHead
from skelssl.evaluation.catalog import PROTOCOLS, get_protocol, register_protocol
from skelssl.evaluation.features import encode_splits, extract_features
from skelssl.evaluation.finetune import FinetuneConfig
from skelssl.evaluation.fusion import StreamScores, fuse_logits, fuse_scores, load_scores, save_scores
from skelssl.evaluation.inputs import model_input
from skelssl.evaluation.knn import accuracy, knn_evaluate, nn1_cosine_predict, weighted_knn_predict
from skelssl.evaluation.linear import LinearProbeConfig, linear_probe, linear_probe_with_augmentation
from skelssl.evaluation.loading import load_backbone
from skelssl.evaluation.protocols import EvalContext, Protocol
from skelssl.evaluation.report import markdown_report
from skelssl.evaluation.results import (ResultRecord, format_table, print_table, read_results, to_percent,
                                        write_results)
from skelssl.evaluation.runner import evaluate_backbone, evaluate_checkpoints, pick_device, prepare_random_init
from skelssl.evaluation.semi import class_balanced_subset

__all__ = [
    "Backbone", "ClassifierHead", "load_backbone",
    "extract_features", "encode_splits", "model_input",
    "FinetuneConfig", "class_balanced_subset",
    "StreamScores", "fuse_logits", "fuse_scores", "load_scores", "save_scores", "markdown_report",
    "accuracy", "knn_evaluate", "nn1_cosine_predict", "weighted_knn_predict",
    "LinearProbeConfig", "linear_probe", "linear_probe_with_augmentation",
    "PROTOCOLS", "EvalContext", "Protocol", "get_protocol", "register_protocol",
    "evaluate_checkpoints", "evaluate_backbone", "prepare_random_init", "pick_device",
    "ResultRecord", "format_table", "print_table", "read_results", "to_percent", "write_results",
]
