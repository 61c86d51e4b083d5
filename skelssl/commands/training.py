"""`skelssl demo`, `skelssl pretrain` and `skelssl analyze`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from skelssl.analysis.actionlets import TRAINING_WAY
from skelssl.analyze import (analyze_actionlets, analyze_segmentation, analyze_spectrum, analyze_strength,
                             analyze_tsne)
from skelssl.checkpoints import read_checkpoint, run_dir_of
from skelssl.config import load_config, parse_overrides
from skelssl.demo import run_demo
from skelssl.errors import UserError
from skelssl.defaults import model_label
from skelssl.evaluation import Backbone, pick_device, print_table, write_results
from skelssl.evaluation.loading import backbone_from_checkpoint, checkpoint_config
from skelssl.evaluation.runner import prepare_random_init
from skelssl.methods import method_from_checkpoint
from skelssl.outputs import check_output_dir
from skelssl.train import pretrain as run_pretraining
from skelssl.train import saved_run_config

__all__ = ["demo", "pretrain", "analyze"]


def demo(args: argparse.Namespace) -> int:
    run_demo(args.run_dir, args.overrides)
    return 0


def pretrain(args: argparse.Namespace) -> int:
    requested = parse_overrides(args.overrides)
    saved = None
    if requested.get("resume") is True and requested.get("run_dir"):
        # resume: the run's own settings are the starting point; what the command adds is checked against them
        saved = saved_run_config(requested["run_dir"])
    cfg = load_config(args.config, args.overrides, dataset=args.dataset, method=args.method, encoder=args.encoder,
                      start_from=saved)
    if args.show_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    run_dir = run_pretraining(cfg, command=["skelssl", *sys.argv[1:]])
    print(f"pretraining finished: {run_dir / 'checkpoints' / 'last.ckpt'}")
    return 0


def analyze(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.overrides)
    out_dir = check_output_dir(args.out, create=False) if args.out else run_dir_of(args.checkpoint) / "analysis"
    results_dir = run_dir_of(args.checkpoint) if not args.out else out_dir
    if args.what == "strength":
        if not args.vary:
            raise UserError("analyze strength needs --vary KEY=V1,V2,... (e.g. augment.shear_amplitude=0.1,0.5,1)")
        records, paths = analyze_strength(args.checkpoint, args.vary, Path(args.out or out_dir / "strength"),
                                          args.epochs, init_from_checkpoint=args.init_from_checkpoint,
                                          epsilon=args.epsilon, max_nodes=args.max_nodes, overrides=overrides)
        _finish_analysis(results_dir, records, paths)
        return 0
    records, paths = [], []
    if args.what in ("actionlets", "spectrum"):  # these read the method's own parts (actionlets, the projector)
        method = method_from_checkpoint(args.checkpoint, overrides)
        device = pick_device(method.cfg.trainer.accelerator)
        if args.what == "actionlets":
            print(f"actionlets {TRAINING_WAY}")
            records, paths = analyze_actionlets(method, out_dir, device, limit=args.limit)
            if not records:
                print("this dataset has no ground-truth actionlets: pictures only")
        else:
            models = [(method, model_label(method.cfg))]
            if args.with_random_init:
                random_init = method_from_checkpoint(args.checkpoint, overrides, load_weights=False)
                # the same BatchNorm calibration as every random-init baseline, on the method's own encoder
                prepare_random_init(Backbone(encoder=random_init.backbone, layout=random_init.layout,
                                             stream=str(random_init.cfg.data.stream),
                                             pretrained_on=random_init.train_data_info), random_init.cfg, device)
                models.append((random_init, "random_init"))
            for model, name in models:
                found, drawn = analyze_spectrum(model, out_dir, device, name, epsilon=args.epsilon,
                                                max_nodes=args.max_nodes)
                records, paths = records + found, paths + drawn
        _finish_analysis(results_dir, records, paths)
        return 0
    ckpt = read_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt, args.checkpoint, overrides)
    device = pick_device(str(cfg.trainer.accelerator))
    models = [backbone_from_checkpoint(ckpt, cfg, args.checkpoint)]
    if args.with_random_init:
        random_init = backbone_from_checkpoint(ckpt, cfg, args.checkpoint, load_weights=False)
        prepare_random_init(random_init, cfg, device)
        models.append(random_init)
    for backbone in models:
        if args.what == "tsne":
            found, path = analyze_tsne(backbone, cfg, out_dir, device, backbone.name)
            records, paths = records + found, paths + [path]
        else:  # segmentation
            found, drawn = analyze_segmentation(backbone, cfg, out_dir, device, backbone.name, sequences=args.sequence)
            records, paths = records + found, paths + drawn
    _finish_analysis(results_dir, records, paths)
    return 0


def _finish_analysis(results_dir: Path, records: list, paths: list) -> None:
    if records:
        write_results(results_dir, records)
        print_table(records)
    for path in paths:
        print(f"wrote {path}")
