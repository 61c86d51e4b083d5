"""`skelssl analyze actionlets|tsne|spectrum|strength|segmentation`: what a pretrained encoder learned, as
figures, pictures and numbers (records in results.json)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from skelssl.analysis.actionlets import actionlet_scores, plot_actionlet, plot_tsne, predict_actionlets, ranking_auc
from skelssl.analysis.clustering import cluster_scores
from skelssl.analysis.pictures import animate_actionlet, plot_actionlet_heatmaps, plot_average_motion
from skelssl.analysis.strength import measure_spectrum, plot_spectra, plot_strength, strength_sweep
from skelssl.checkpoints import LAST_CHECKPOINT, read_checkpoint
from skelssl.data.dataset import SkeletonDataset
from skelssl.data.pkummd import read_pku_skeleton
from skelssl.data.prepared import open_data
from skelssl.defaults import model_label
from skelssl.errors import UserError
from skelssl.evaluation import Backbone, ResultRecord, encode_splits
from skelssl.evaluation.segmentation import METRICS, _settings, frame_features, plot_segmentation, run_segmentation
from skelssl.methods.actclr.actionlet import dataset_average
from skelssl.methods.core.base import MoCoMethod
from skelssl.transforms.streams import to_stream


def analyze_actionlets(method: MoCoMethod, out_dir: Path, device: torch.device, pictures: int = 4,
                       limit: int | None = None) -> tuple[list[ResultRecord], list[Path]]:
    """Actionlets of the test sequences, computed as training computes them (analysis.actionlets.TRAINING_WAY);
    precision/recall/IoU and the scores' ranking AUC when the dataset has ground truth."""
    if not hasattr(method, "actionlet"):
        raise UserError(f"method '{method.name}' has no actionlets; use an ActCLR checkpoint")
    cfg = method.cfg
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    data = test.array()
    rows = np.arange(len(test)) if limit is None else np.arange(min(limit, len(test)))
    predicted, soft = predict_actionlets(method, data[rows], device=device)  # as training computes them
    records: list[ResultRecord] = []
    truth = None
    if "actionlets" in test.meta.extra_arrays:
        truth = np.asarray(open_data(cfg.data.root, "actionlets")[test.indices[rows]]).astype(bool)
        scores = actionlet_scores(predicted, truth)
        common = dict(dataset=cfg.data.dataset, split=cfg.data.split, model=model_label(cfg), stream=cfg.data.stream,
                      protocol="actionlet")
        # the soft scores' ranking, threshold-free: does the map put the moving cells first at all?
        scores["auc"] = ranking_auc(soft, truth)
        for metric in ("precision", "recall", "iou", "predicted_fraction", "chance_precision", "auc",
                       "joint_precision", "joint_chance", "frame_precision", "frame_chance"):
            records.append(ResultRecord.from_fraction(metric=metric, fraction=scores[metric], **common))
    paths = []
    names = test.meta.class_names
    for i in np.linspace(0, len(rows) - 1, min(pictures, len(rows))).round().astype(int):
        label = names[int(test.labels[rows[i]])]
        paths.append(plot_actionlet(np.asarray(data[rows[i]]), predicted[i].numpy(), test.layout,
                                    out_dir / f"actionlet_{i:04d}_{label}.png", title=f"{method.name}: {label}",
                                    truth=None if truth is None else truth[i]))
        if len(paths) == 1:  # the first pictured sequence also as an animation
            paths.append(animate_actionlet(np.asarray(data[rows[i]]), predicted[i].numpy(), test.layout,
                                           out_dir / f"actionlet_{i:04d}_{label}.gif", title=f"{method.name}: {label}"))
    paths += actionlet_summary_pictures(method, predicted.numpy(), truth, test.labels[rows], out_dir)
    return records, paths


def actionlet_summary_pictures(method: MoCoMethod, predicted: np.ndarray, truth: np.ndarray | None,
                               labels: np.ndarray, out_dir: Path) -> list[Path]:
    """Per-class heat maps of the predicted (and true) actionlets (ActCLR+ Figs. 14-15) and the training set's
    average motion, the static anchor, as a skeleton (Fig. 5)."""
    cfg = method.cfg
    train = SkeletonDataset(cfg.data.root, cfg.data.split, "train")
    names = train.meta.class_names
    paths = [plot_actionlet_heatmaps(predicted, labels, names, train.layout, out_dir / "actionlet_heatmaps.png",
                                     title=f"{method.name}: predicted actionlets of {len(labels)} test sequences")]
    if truth is not None:
        paths.append(plot_actionlet_heatmaps(truth, labels, names, train.layout,
                                             out_dir / "actionlet_heatmaps_truth.png",
                                             title="ground-truth actionlets of the same sequences"))
    average = dataset_average(train.array()).numpy()
    paths.append(plot_average_motion(average, train.layout, out_dir / "average_motion.png"))
    return paths


def _record(cfg: Any, model_name: str, protocol: str, metric: str, value: float,
            percent: bool = True) -> ResultRecord:
    """A record of an analysis: fractions in percent, other figures (κ, a diameter, an index) as they are."""
    common = dict(dataset=cfg.data.dataset, split=cfg.data.split, model=model_name, stream=cfg.data.stream,
                  protocol=protocol, metric=metric)
    return ResultRecord.from_fraction(fraction=value, **common) if percent else ResultRecord(value=value, **common)


def analyze_tsne(backbone: Backbone, cfg: Any, out_dir: Path, device: torch.device,
                 model_name: str) -> tuple[list[ResultRecord], Path]:
    """t-SNE of the test features, and NMI / Davies-Bouldin of k-means on them (in its title and the records)."""
    features = encode_splits(backbone, cfg, device)
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    labels = features["test_labels"].numpy()
    clusters = cluster_scores(features["test_feats"], labels, seed=int(cfg.trainer.seed))
    records = [_record(cfg, model_name, "clustering", "nmi", clusters["nmi"]),
               _record(cfg, model_name, "clustering", "davies_bouldin", clusters["davies_bouldin"], percent=False)]
    path = plot_tsne(features["test_feats"], labels, test.meta.class_names, out_dir / f"tsne_{model_name}.png",
                     title=f"t-SNE, {model_name}, {cfg.data.dataset} {cfg.data.split} test\n"
                           f"k-means (k={clusters['clusters']}): NMI {clusters['nmi']:.3f}, "
                           f"Davies-Bouldin {clusters['davies_bouldin']:.2f}")
    return records, path


def analyze_spectrum(method: MoCoMethod, out_dir: Path, device: torch.device, model_name: str,
                     epsilon: float = 0.1, max_nodes: int = 1000) -> tuple[list[ResultRecord], list[Path]]:
    """κ (ActCLR+ eq. 15) and the category diameter (eq. 19) of one model's test embeddings; the spectrum PNG."""
    scores = measure_spectrum(method, device, epsilon=epsilon, max_nodes=max_nodes)
    records = [_record(method.cfg, model_name, "spectrum", metric, scores[metric], percent=False)
               for metric in ("kappa", "diameter", "centre_distance")]
    path = plot_spectra([{**scores, "label": model_name}], out_dir / f"spectrum_{model_name}.png",
                        title=f"normalised Laplacian of the feature graph, {model_name} ({scores['nodes']} test "
                              f"sequences, τ={scores['temperature']})")
    return records, [path]


def analyze_strength(checkpoint: str | Path, vary: str, out_dir: Path, epochs: int, *, init_from_checkpoint: bool,
                     epsilon: float, max_nodes: int,
                     overrides: dict | None = None) -> tuple[list[ResultRecord], list[Path]]:
    """The sweep of skelssl.analysis.strength: records per value (model '<method>@<key>=<value>'), three PNGs."""
    key, _, values = vary.partition("=")
    if not key or not values:
        raise UserError(f"--vary must look like KEY=V1,V2,... (e.g. augment.shear_amplitude=0.1,0.5,1.0), got "
                        f"'{vary}'")
    results = strength_sweep(checkpoint, key, [v.strip() for v in values.split(",") if v.strip()], out_dir,
                             epochs=epochs, init_from_checkpoint=init_from_checkpoint, epsilon=epsilon,
                             max_nodes=max_nodes, overrides=overrides)
    records = []
    for result in results:
        method = _sweep_method(result["run_dir"])
        name = f"{method.name}@{key}={result['label']}"
        records += [_record(method.cfg, name, "spectrum", metric, result[metric], percent=False)
                    for metric in ("kappa", "diameter", "centre_distance")]
        records += [_record(method.cfg, name, "knn", k[4:], v) for k, v in result.items() if k.startswith("knn_")]
    return records, plot_strength(results, out_dir)


def _sweep_method(run_dir: str) -> Any:
    """What _record needs of a sweep's run (its config and method name), without building its networks."""
    cfg = OmegaConf.create(read_checkpoint(Path(run_dir) / LAST_CHECKPOINT)["hyper_parameters"]["cfg"])
    return SimpleNamespace(cfg=cfg, name=model_label(cfg))


def analyze_segmentation(backbone: Backbone, cfg: Any, out_dir: Path, device: torch.device, model_name: str,
                         sequences: list[str] | None = None,
                         pictures: int = 4) -> tuple[list[ResultRecord], list[Path]]:
    """The segmentation protocol with pictures: true and predicted frame labels of test sequences; with
    `sequences` (raw PKU-MMD skeleton files, 150 numbers a line), the predicted labels of each of them too
    (no label file: no score)."""
    result = run_segmentation(backbone, cfg, device)
    records = [_record(cfg, model_name, "segmentation", metric, result.scores[metric]) for metric in METRICS]
    picks = np.linspace(0, len(result.truth) - 1, min(pictures, len(result.truth))).round().astype(int)
    rows = [(result.test_names[i], result.truth[i], result.predicted[i]) for i in picks]
    shown = ", ".join(f"{m.upper()} {100 * result.scores[m]:.1f}" for m in METRICS)
    paths = [plot_segmentation(rows, result.class_names, out_dir / f"segmentation_{model_name}.png",
                               title=f"{model_name}: frame labels of test sequences ({shown})")]
    settings = _settings(cfg)
    encoder = backbone.encoder.to(device).eval()
    for file in sequences or []:
        frames = read_pku_skeleton(file)  # (T, 2, 25, 3)
        x = torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 2, 1))[None]).to(device)
        feats = frame_features(encoder, to_stream(x, backbone.stream, backbone.layout),
                               chunk_frames=int(settings.chunk_frames),
                               context_frames=int(settings.context_frames),
                               frame_step=int(settings.frame_step))
        predicted = result.classifier.predict(feats).cpu().numpy()
        name = Path(file).stem
        paths.append(plot_segmentation([(name, None, predicted)], result.class_names,
                                       out_dir / f"segmentation_{model_name}_{name}.png",
                                       title=f"{model_name}: predicted frame labels of {Path(file).name} "
                                             f"({len(predicted)} frames, no label file: no score)"))
    return records, paths
