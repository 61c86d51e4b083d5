"""`skelssl prepare ntu60|ntu120`: parse every .skeleton file (data/ntu.py), preprocess it by a recipe
(data/ntu_preprocess.py) and write the prepared dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelssl.data.ntu import (NTU120_CLASS_NAMES, NTU_JOINTS, find_ntu_files, ntu_splits, parse_sample_name,
                              read_name_list, read_skeleton_file)
from skelssl.data.ntu_preprocess import preprocess_skeleton
from skelssl.data.prepared import PreparedMeta, SkipSample, provenance, run_prepare
from skelssl.skeleton.layouts import NTU25

__all__ = ["prepare_ntu"]


def _ntu_worker(task: tuple[str, object]) -> tuple[np.ndarray, int, dict]:
    path, recipe = task
    skel = read_skeleton_file(path, max_bodies=max(recipe.read_bodies, 4) if recipe.denoise
                              else recipe.read_bodies)
    if not skel.has_skeleton:
        raise SkipSample("missing skeleton: no body in any frame")
    sample, length = preprocess_skeleton(skel, recipe)
    return sample, length, {"source_frames": skel.num_frames}


def prepare_ntu(raw_dir: str | Path, out_dir: str | Path, dataset: str, recipe: object,
                exclude_list: str | Path | None = None, skip_bad: bool = False, workers: int = 0,
                progress: bool = True, limit: int | None = None):
    """Parse every `.skeleton` file of NTU 60 / 120 under raw_dir and write the prepared dataset.

    recipe: an ntu_preprocess.NtuRecipe. exclude_list: the official list of samples with missing
    skeletons (files named there are skipped and reported). Returns a PrepareReport.
    """
    files = find_ntu_files(raw_dir, dataset)
    excluded = read_name_list(exclude_list) if exclude_list else set()
    pre_skipped = [{"file": f.name, "reason": "in the exclude list"} for f in files
                   if f.name.split(".")[0] in excluded]
    files = [f for f in files if f.name.split(".")[0] not in excluded]
    if limit:
        files = files[:limit]
    names = [f.name.split(".")[0] for f in files]
    num_classes = 60 if dataset == "ntu60" else 120

    def make_meta(kept: np.ndarray, lengths: np.ndarray, infos: list) -> PreparedMeta:
        kept_names = [names[i] for i in kept]
        return PreparedMeta(
            dataset=dataset, layout=NTU25, class_names=list(NTU120_CLASS_NAMES[:num_classes]),
            labels=np.array([parse_sample_name(n).action - 1 for n in kept_names], dtype=np.int64),
            lengths=lengths, sample_names=kept_names, splits=ntu_splits(kept_names, dataset),
            provenance=provenance(f"prepare {dataset}", raw_dir=str(Path(raw_dir).resolve()),
                                  recipe=recipe.to_dict(), exclude_list=str(exclude_list) if exclude_list
                                  else None, excluded=len(pre_skipped)))

    shape = (3, recipe.out_frames, NTU_JOINTS, recipe.bodies)
    report = run_prepare(out_dir, [(str(f), recipe) for f in files], [f.name for f in files], _ntu_worker,
                         shape, make_meta, workers=workers, skip_bad=skip_bad, desc=dataset,
                         progress=progress, extra_arrays={"source_frames": ((), np.int64)})
    report.skipped = pre_skipped + report.skipped
    return report
