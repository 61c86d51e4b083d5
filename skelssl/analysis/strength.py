"""κ and the category diameter as functions of augmentation strength (ActCLR+ §III-C, Figs. 1-3), in one command.

For each value of one augmentation key (e.g. `augment.shear_amplitude` — the shear R of eq. 16 — or
`augment.noise_std`, the noise N of Fig. 2), a run is pretrained with the checkpoint's configuration and that
value (from scratch by default, as the paper trains one model per strength; or starting from the checkpoint's
weights with `init_from_checkpoint`), then the spectrum of its features is measured (skelssl.analysis.spectrum)
with its KNN accuracy. Pictures: the Laplacian eigenvalues per strength (Fig. 1), κ and the diameter against the
strength (Fig. 2), the accuracy against κ with the fitted a − bκ − c/κ (Fig. 3, eqs. 17-18).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from skelssl.analysis.spectrum import fit_accuracy_curve, spectrum_scores
from skelssl.checkpoints import LAST_CHECKPOINT, read_checkpoint
from skelssl.data.dataset import SkeletonDataset
from skelssl.defaults import check_keys
from skelssl.errors import UserError
from skelssl.evaluation import encode_splits, extract_features, knn_evaluate, load_backbone, pick_device
from skelssl.evaluation.monitor import evenly_spaced
from skelssl.figures import save_png
from skelssl.methods import method_from_checkpoint
from skelssl.train import pretrain
from skelssl.transforms.streams import to_stream

__all__ = ["ContrastiveEmbedding", "embed_test_part", "measure_spectrum", "strength_sweep", "plot_spectra",
           "plot_strength"]


class ContrastiveEmbedding(nn.Module):
    """x -> the L2-normalised projector output z of the query network: f(x) of ActCLR+ eq. 1."""

    def __init__(self, method: Any) -> None:
        super().__init__()
        self.encoder, self.projector = method.backbone, method.projector_q

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.projector(self.encoder(x)), dim=1)


def embed_test_part(method: Any, device: torch.device, max_nodes: int = 1000) -> tuple[Tensor, np.ndarray]:
    """(z of at most `max_nodes` evenly spaced test sequences, their labels)."""
    cfg = method.cfg
    test = SkeletonDataset(cfg.data.root, cfg.data.split, "test")
    rows = evenly_spaced(len(test), max_nodes)
    model = ContrastiveEmbedding(method).to(device)
    z = extract_features(model, np.asarray(test.array()[rows]), batch_size=int(cfg.eval.batch_size), device=device,
                         transform=lambda x: to_stream(x, cfg.data.stream, method.layout))
    return z, np.asarray(test.labels[rows])


def measure_spectrum(method: Any, device: torch.device, epsilon: float = 0.1, max_nodes: int = 1000,
                     temperature: float | None = None) -> dict[str, Any]:
    """κ, eigenvalues and diameter of a method's test embeddings; τ defaults to its InfoNCE temperature."""
    tau = float(temperature if temperature is not None else method.cfg.method.get("temperature", 0.1))
    z, labels = embed_test_part(method, device, max_nodes)
    return spectrum_scores(z, labels, temperature=tau, epsilon=epsilon)


def _parse_value(text: str) -> Any:
    """'0.5' -> 0.5, 'true' -> True, as a key=value override would give it."""
    return OmegaConf.from_dotlist([f"v={text}"]).v


def strength_sweep(checkpoint: str | Path, key: str, values: list[str], out_dir: str | Path, *, epochs: int,
                   init_from_checkpoint: bool = False, epsilon: float = 0.1, max_nodes: int = 1000,
                   overrides: dict[str, Any] | None = None, device: torch.device | None = None) -> list[dict[str, Any]]:
    """Pretrain one run per value of `key` and measure each (module docstring); returns one dict per value and
    writes OUT/strength.json. A run already finished in OUT/<key>=<value>/ is measured, not trained again."""
    out_dir = Path(out_dir)
    saved = OmegaConf.create(read_checkpoint(checkpoint)["hyper_parameters"]["cfg"])
    if OmegaConf.select(saved, key) is None:
        raise UserError(f"--vary: the checkpoint's config has no key '{key}' (e.g. augment.shear_amplitude, "
                        "augment.noise_std)")
    check_keys(overrides or {}, saved, "the command line")
    results = []
    for text in values:
        value = _parse_value(text)
        run_dir = out_dir / f"{key}={text}"
        cfg = OmegaConf.merge(saved, overrides or {})
        OmegaConf.update(cfg, key, value)
        cfg.trainer.epochs = int(epochs)
        cfg.run_dir, cfg.resume = str(run_dir), False
        cfg.model.init_from = str(checkpoint) if init_from_checkpoint else None
        started = time.perf_counter()
        if not (run_dir / LAST_CHECKPOINT).is_file():
            pretrain(cfg, command=["skelssl", "analyze", "strength", f"{key}={text}"])
        trained = time.perf_counter() - started
        method = method_from_checkpoint(run_dir / LAST_CHECKPOINT)
        run_device = device or pick_device(str(cfg.trainer.accelerator))
        scores = measure_spectrum(method, run_device, epsilon=epsilon, max_nodes=max_nodes)
        backbone, backbone_cfg = load_backbone(run_dir / LAST_CHECKPOINT)
        features = encode_splits(backbone, backbone_cfg, run_device)
        knn = knn_evaluate(features["train_feats"], features["train_labels"], features["test_feats"],
                           features["test_labels"], features["num_classes"], ks=tuple(method.cfg.eval.knn.k),
                           temperature=float(method.cfg.eval.knn.temperature))
        results.append({"key": key, "value": value, "label": text, "run_dir": str(run_dir), **scores,
                        **{f"knn_{k}": v for k, v in knn.items()}, "pretrain_seconds": trained,
                        "measure_seconds": time.perf_counter() - started - trained})
        print(f"[strength] {key}={text}: kappa {scores['kappa']} of {scores['nodes']}, diameter "
              f"{scores['diameter']:.3f}, 1-NN {100 * knn['1nn_cosine']:.1f} % "
              f"({trained:.0f} s pretraining)", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "strength.json").write_text(json.dumps(results, indent=1))
    return results


def plot_spectra(results: list[dict[str, Any]], path: str | Path, title: str, legend_title: str = "") -> Path:
    """PNG of the smallest Laplacian eigenvalues against their index, one curve per result, ε marked (Fig. 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(results), 1)))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for colour, r in zip(colours, results):
        eigenvalues = np.asarray(r["eigenvalues"])
        shown = eigenvalues[: min(len(eigenvalues), max(4 * r["kappa"], 60))]
        ax.plot(np.arange(1, len(shown) + 1), shown, color=colour, label=f"{r['label']} (κ={r['kappa']})")
    if results:
        ax.axhline(results[0]["epsilon"], color="red", ls=":", label=f"ε = {results[0]['epsilon']}")
    ax.set_xlabel("index i")
    ax.set_ylabel("eigenvalue v_i of the normalised Laplacian")
    ax.set_title(title)
    ax.legend(fontsize=8, title=legend_title or None, title_fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def plot_strength(results: list[dict[str, Any]], out_dir: str | Path, title: str = "",
                  accuracy_key: str = "knn_1nn_cosine") -> list[Path]:
    """strength_spectrum.png (Fig. 1), strength_kappa.png (Fig. 2: κ and diameter vs strength) and
    strength_accuracy.png (Fig. 3: accuracy vs κ with the fitted eq. 17 form)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    key = results[0]["key"] if results else "strength"
    paths = [plot_spectra(results, out_dir / "strength_spectrum.png", title or f"spectrum per {key} (ActCLR+ Fig. 1)",
                          legend_title=key)]

    numeric = all(isinstance(r["value"], (int, float)) for r in results)
    xs = [r["value"] if numeric else i for i, r in enumerate(results)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [r["kappa"] for r in results], marker="o", color="tab:blue", label="κ (clusters, eq. 15)")
    ax.set_xlabel(key)
    ax.set_ylabel("κ", color="tab:blue")
    if not numeric:
        ax.set_xticks(xs, [r["label"] for r in results])
    twin = ax.twinx()
    twin.plot(xs, [r["diameter"] for r in results], marker="s", color="tab:red", label="category diameter (eq. 19)")
    twin.plot(xs, [r["centre_distance"] for r in results], marker="^", color="tab:orange", ls="--",
              label="distance between class centres")
    twin.set_ylabel("distance on the unit sphere", color="tab:red")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    ax.set_title(f"κ and category diameter vs {key} (ActCLR+ Fig. 2)")
    ax.grid(alpha=0.3)
    paths.append(save_png(fig, out_dir / "strength_kappa.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    kappa = np.array([r["kappa"] for r in results], dtype=float)
    accuracy = np.array([100 * r[accuracy_key] for r in results])
    ax.scatter(kappa, accuracy, color="black", zorder=3)
    for r, k, a in zip(results, kappa, accuracy):
        ax.annotate(r["label"], (k, a), textcoords="offset points", xytext=(4, 4), fontsize=8)
    fit = fit_accuracy_curve(kappa, accuracy)
    if fit is not None:
        grid = np.linspace(max(kappa[kappa > 0].min() * 0.8, 0.5), kappa.max() * 1.2, 200)
        a, b, c = fit
        ax.plot(grid, a - b * grid - c / grid, color="red", label=f"{a:.1f} − {b:.3f}κ − {c:.1f}/κ")
        ax.legend(fontsize=8)
    ax.set_xlabel("κ")
    ax.set_ylabel(f"{accuracy_key.replace('knn_', '')} accuracy (%)")
    ax.set_title("accuracy vs κ (ActCLR+ Fig. 3, eq. 17 form)")
    ax.grid(alpha=0.3)
    paths.append(save_png(fig, out_dir / "strength_accuracy.png"))
    return paths
