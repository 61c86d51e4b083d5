"""An imported model as a skelssl run directory, which `evaluate`, `analyze`, `predict`, `export` and the API read:

    RUN/checkpoints/last.ckpt   the skelssl checkpoint format (read with weights_only): the encoder under
                                `encoder_q.`, a classifier under `head.`, pretext parts under their names
    RUN/config.yaml             the config the encoder is built from (its widths read from the tensor shapes)
    RUN/imported.json           provenance: the source file, its sha256, the family, every source key -> its place

The folder is staged and renamed into place (skelssl.outputs): an earlier import is replaced, a folder of the
user's is refused.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from skelssl import __version__
from skelssl.checkpoints import CHECKPOINT_FORMAT, LAST_CHECKPOINT, checkpoint_file, config_hash
from skelssl.defaults import evaluation_defaults
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone, ClassifierHead, TrainedClassifier
from skelssl.evaluation.inputs import pretraining_persons
from skelssl.evaluation.loading import ENCODER_PREFIX, HEAD_PREFIX
from skelssl.interop.imported import ImportedModel
from skelssl.interop.sources import sha256_of
from skelssl.models import build_encoder
from skelssl.outputs import check_replaceable, list_entries, move_into_place, staging_dir
from skelssl.skeleton.layouts import get_layout

__all__ = ["IMPORTED_FILE", "IMPORTED_METHOD", "imported_run_problem", "write_imported_run", "imported_config",
           "write_classifier_run"]

IMPORTED_FILE = "imported.json"
IMPORTED_METHOD = "imported"  # method.name of a run that holds only an encoder (it cannot be resumed)
RUN_ENTRIES = {"checkpoints", "config.yaml", IMPORTED_FILE}


def imported_run_problem(folder: Path) -> str | None:
    """None when `folder` is an imported run skelssl wrote (it may be replaced), else what shows it is not.
    Results evaluate/predict added to it (results.json, scores/ ...) are the user's: such a folder is refused."""
    names = set(list_entries(folder))
    if IMPORTED_FILE not in names:
        return f"it has no {IMPORTED_FILE}"
    extra = sorted(names - RUN_ENTRIES)
    return f"it also holds {', '.join(extra[:4])}" if extra else None


def imported_config(model: ImportedModel, label: str, data: dict[str, Any] | None = None) -> Any:
    cfg = evaluation_defaults(model.encoder)
    cfg.method.name = IMPORTED_METHOD
    cfg.model[model.encoder] = {**OmegaConf.to_container(cfg.model[model.encoder]), **model.encoder_settings}
    cfg.data.dataset = model.trained_on
    cfg.data.root = f"data/{model.trained_on}"
    cfg.data.stream = model.stream
    cfg.data.split = "xview" if "xview" in label else "xsub" if "xsub" in label else str(cfg.data.split)
    for key, value in (data or {}).items():
        cfg.data[key] = value
    return cfg


def _check_loads(model: ImportedModel, cfg: Any, source: Path) -> None:
    """The encoder (and classifier) the config describes take the placed tensors exactly, or a clear error."""
    encoder = build_encoder(cfg.model, get_layout(model.layout), in_channels=model.in_channels)
    part = {k[len(ENCODER_PREFIX):]: v for k, v in model.state.items() if k.startswith(ENCODER_PREFIX)}
    modules = [("encoder", encoder, part)]
    if model.head:
        head = ClassifierHead(encoder.feature_dim, int(model.head["num_classes"]))
        modules.append(("classifier", head, {k[len(HEAD_PREFIX):]: v for k, v in model.state.items()
                                             if k.startswith(HEAD_PREFIX)}))
    for what, module, state in modules:
        own = module.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        misshapen = sorted(k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or misshapen:
            reverse = {target: src for src, target in model.key_map.items()}
            prefix = ENCODER_PREFIX if what == "encoder" else HEAD_PREFIX
            if misshapen:
                name = misshapen[0]
                detail = (f"'{reverse.get(prefix + name, name)}' is {tuple(state[name].shape)} where skelssl's "
                          f"{model.encoder} has {tuple(own[name].shape)}")
            elif missing:
                theirs = model.source_name(prefix + missing[0]) if model.source_name else missing[0]
                detail = f"the file lacks '{theirs}' (skelssl's {model.encoder} needs it as '{missing[0]}')"
            else:
                detail = f"'{reverse.get(prefix + unexpected[0], unexpected[0])}' has no place in skelssl's {model.encoder}"
            raise UserError(f"'{source}': its {what} does not fit skelssl's {model.encoder}: {detail} "
                            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(misshapen)} of another "
                            "shape)")


def write_imported_run(model: ImportedModel, out: str | Path, *, source: Path, sha256: str, label: str,
                       source_notes: list[str], data: dict[str, Any] | None = None) -> Path:
    """The run directory of one imported model at `out` (module docstring); `data`: data.* settings of its
    config (default: the dataset the weights learnt on)."""
    out = Path(out)
    check_replaceable(out, imported_run_problem, "imported run")
    cfg = imported_config(model, label, data)
    _check_loads(model, cfg, source)
    container = OmegaConf.to_container(cfg, resolve=True)
    provenance = {
        "source": str(source.resolve()), "sha256": sha256, "family": model.family, "role": model.role,
        "stream": model.stream, "label": label, "imported_by": f"skelssl {__version__}",
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": list(source_notes) + list(model.notes), "key_map": dict(model.key_map),
    }
    info: dict[str, Any] = {"version": __version__, "format": CHECKPOINT_FORMAT, "config_hash": config_hash(container),
                            "method": IMPORTED_METHOD, "kind": "imported", "imported": provenance,
                            "expects": model.expects}
    if model.head:
        info["head"] = dict(model.head)
    checkpoint = {
        "skelssl": info,
        "hyper_parameters": {"cfg": container, "layout": get_layout(model.layout).to_dict(),
                             "train_data_info": {"persons": model.persons, "channels": model.in_channels,
                                                 "dataset": model.trained_on}},
        "state_dict": {key: value.detach().clone().contiguous() for key, value in model.state.items()},
    }
    staged = staging_dir(out)
    try:
        (staged / "checkpoints").mkdir()
        torch.save(checkpoint, staged / LAST_CHECKPOINT)
        OmegaConf.save(OmegaConf.create(container), staged / "config.yaml")
        (staged / IMPORTED_FILE).write_text(json.dumps({**provenance, "expects": model.expects,
                                                        "head": model.head}, indent=1))
        return move_into_place(staged, out, imported_run_problem, "imported run")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_classifier_run(backbone: Backbone, cfg: Any, trained: TrainedClassifier, checkpoint: str | Path,
                         out: str | Path) -> Path:
    """A classifier an evaluation protocol trained (`evaluate ... --save-classifier`) as a run that `predict`,
    `export` and `evaluate` take: the encoder it classifies with (the frozen one for `linear`, the trained copy
    for finetune, semi, supervised) and its classifier, with the run it came from as provenance."""
    source = checkpoint_file(checkpoint)
    encoder = str(cfg.model.encoder)
    head = trained.head
    state = {f"{ENCODER_PREFIX}{k}": v for k, v in trained.encoder.state_dict().items()}
    state.update({f"{HEAD_PREFIX}{k}": v for k, v in head.state_dict().items()})
    root = str(cfg.data.root)
    model = ImportedModel(
        family="skelssl", role=trained.protocol, stream=backbone.stream, encoder=encoder,
        encoder_settings=OmegaConf.to_container(cfg.model[encoder], resolve=True),
        layout=backbone.layout.to_dict(), in_channels=int(backbone.pretrained_on.get("channels", 3)), state=state,
        key_map={key: key for key in state},
        head={"num_classes": head.num_classes, "standardize": head.standardize, "class_names": trained.class_names},
        expects=backbone.expects, persons=int(pretraining_persons(backbone) or 2),
        trained_on=str(backbone.pretrained_on.get("dataset") or Path(str(backbone.pretrained_on.get("root") or
                                                                             "unknown")).name))
    return write_imported_run(model, out, source=source, sha256=sha256_of(source),
                              label=f"{backbone.name}-{trained.protocol}",
                              source_notes=[f"the classifier of `evaluate {trained.protocol}` on {root} (split "
                                            f"{cfg.data.split}), from {source}"],
                              data={"root": root, "split": str(cfg.data.split), "dataset": str(cfg.data.dataset)})
