"""Parity of an imported checkpoint with the authors' own model: the same weights, the same input, the same
features, logits, loss and gradients.

    python benchmarks/parity_official_stgcn.py --official-repo /work/.mirror/LanglandsLin+ActCLR/repo \
        --work /tmp/parity [--shared ../shared/data]

The authors' ST-GCN (`net/st_gcn.py` with `net/utils/` of LanglandsLin/ActCLR, the class both their AimCLR and
ActCLR linear evaluations use as `encoder_q`) is read from a snapshot of their repository at run time (git show
into --work; nothing of it is kept in skelssl), built with the model arguments of the shared run config, and
loaded with their checkpoint's `encoder_q.*` tensors (load_state_dict strict). skelssl imports the same file
(`skelssl import`). On the 60 shared NTU samples prepared by `skelssl prepare ntu60 --preset aimclr`, both
models in eval mode: the pooled 256-d features (the input of their `fc`, caught by a forward hook), the
logits, the top-1 against the labels, a cross-entropy loss and the gradients of named parameters after its
backward pass. In float32 and in float64 (both models converted); exits 1 if a float64 difference exceeds
1e-5 (float32 differences are summation order; printed too).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skelssl.cli import main as skelssl
from skelssl.console import run_script
from skelssl.data.prepared import load_meta, open_data
from skelssl.evaluation import load_backbone

AUTHOR_FILES = ("net/__init__.py", "net/st_gcn.py", "net/utils/__init__.py", "net/utils/graph.py", "net/utils/tgcn.py")
MODEL_ARGS = {"in_channels": 3, "hidden_channels": 16, "hidden_dim": 256, "num_class": 60, "dropout": 0.5,
              "edge_importance_weighting": True, "graph_args": {"layout": "ntu-rgb+d", "strategy": "spatial"}}
# (their parameter, skelssl's) whose gradients are compared; fc is a 1x1 conv there, a linear layer here
GRADIENTS = (("data_bn.weight", "encoder.data_bn.weight"),
             ("st_gcn_networks.0.gcn.conv.weight", "encoder.blocks.0.gcn.conv.weight"),
             ("st_gcn_networks.9.tcn.2.weight", "encoder.blocks.9.tcn.2.weight"),
             ("edge_importance.5", "encoder.edge_importance.5"),
             ("fc.weight", "head.linear.weight"))


def authors_model(repo: Path, work: Path) -> type:
    code = work / "authors_code"
    for name in AUTHOR_FILES:
        target = code / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shown = subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{name}"], capture_output=True, check=False)
        target.write_bytes(shown.stdout if shown.returncode == 0 else b"")  # an absent __init__.py: empty
    sys.path.insert(0, str(code))
    return importlib.import_module("net.st_gcn").Model


def compare(name: str, checkpoint: Path, Model: type, data: np.ndarray, labels: np.ndarray, work: Path,
            dtype: torch.dtype) -> dict[str, float]:
    run = work / f"imported-{name}"
    if not (run / "imported.json").is_file():
        assert skelssl(["import", str(checkpoint), "--out", str(run)]) == 0
    backbone, _ = load_backbone(run)
    ours_encoder, ours_head = backbone.encoder.to(dtype).eval(), backbone.head.to(dtype).eval()
    theirs = Model(**MODEL_ARGS)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    theirs.load_state_dict({k[len("encoder_q."):]: v for k, v in state.items()}, strict=True)
    theirs = theirs.to(dtype).eval()
    caught = {}
    theirs.fc.register_forward_hook(lambda module, inputs, output: caught.update(features=inputs[0]))
    x = torch.from_numpy(np.asarray(data)).to(dtype)
    y = torch.from_numpy(labels).long()
    their_logits = theirs(x)[0]
    their_features = caught["features"].flatten(1)
    features = ours_encoder(x)
    logits = ours_head(features)
    their_loss = F.cross_entropy(their_logits, y)
    their_loss.backward()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    their_params = dict(theirs.named_parameters())
    our_params = {f"encoder.{k}": v for k, v in ours_encoder.named_parameters()}
    our_params.update({f"head.{k}": v for k, v in ours_head.named_parameters()})
    out = {"features": (features - their_features).abs().max().item(),
           "logits": (logits - their_logits).abs().max().item(),
           "loss": abs(loss.item() - their_loss.item()),
           "top1_ours": 100 * (logits.argmax(1) == y).double().mean().item(),
           "top1_theirs": 100 * (their_logits.argmax(1) == y).double().mean().item(),
           "argmax_agree": float((logits.argmax(1) == their_logits.argmax(1)).all().item()),
           # the scale the float32 differences are rounding of
           "scale_features": their_features.abs().max().item(), "scale_logits": their_logits.abs().max().item()}
    for theirs_name, ours_name in GRADIENTS:
        their_grad = their_params[theirs_name].grad.reshape(our_params[ours_name].grad.shape)
        out[f"grad {theirs_name}"] = (our_params[ours_name].grad - their_grad).abs().max().item()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", type=Path, required=True, help="bare git directory of LanglandsLin/ActCLR")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    Model = authors_model(args.official_repo, args.work)
    prepared = args.work / "ntu60-aimclr"
    if not (prepared / "meta.json").is_file():
        assert skelssl(["prepare", "ntu60", "--raw", str(args.shared / "ntu_raw_samples"), "--out", str(prepared),
                        "--preset", "aimclr", "--no-progress"]) == 0
    meta = load_meta(prepared)
    rows = np.asarray(meta.splits["xview"]["test"])
    data, labels = open_data(prepared)[rows], meta.labels[rows]
    torch.set_num_threads(2)
    worst = 0.0
    for name in ("actclr", "aimclr"):
        checkpoint = args.shared / "official_checkpoints" / f"{name}_ntu60_xview_joint_linear.pt"
        for dtype in (torch.float32, torch.float64):
            found = compare(name, checkpoint, Model, data, labels, args.work, dtype)
            print(f"\n{name} ({str(dtype).removeprefix('torch.')}, {len(rows)} samples): top-1 skelssl "
                  f"{found.pop('top1_ours'):.2f} %, authors {found.pop('top1_theirs'):.2f} %, argmax identical on "
                  f"every sample: {bool(found.pop('argmax_agree'))}; largest |feature| "
                  f"{found.pop('scale_features'):.3g}, largest |logit| {found.pop('scale_logits'):.3g}")
            print(f"  {'max |difference|':<44} value")
            for key, value in found.items():
                print(f"  {key:<44} {value:.3e}")
            if dtype == torch.float64:
                worst = max(worst, *found.values())
    print(f"\nlargest float64 difference: {worst:.3e} ({'within' if worst <= 1e-5 else 'BEYOND'} 1e-5)")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    run_script(main)
