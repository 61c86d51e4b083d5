"""Your own recordings -> a prepared dataset that trains: `skelssl prepare custom`.

Input (custom_inputs.py): one .npy/.npz array of (N, T, V, C) or (N, C, T, V, M) skeletons zero-padded in
time, or a folder of .npy recordings of any lengths with a labels CSV; a layout (a built-in name such as
ntu25, kinect20, coco17, or a YAML file); labels (class indices or names), optionally a split and lengths.
C is 3 (x, y, z), 2 (x, y) or 3 with a confidence score (`channels="xy-score"`).

Every recording is normalised as the dataset preparers do (normalize.py: valid range, centring, view
alignment, unit body size, fixed length); `normalization=OFF` stores the coordinates as given. What was done
is recorded in meta.json (`normalization`) and shown by `skelssl info`.

A recording that holds no skeleton at all, or NaN / infinite values, stops the run with an error naming the
file and sample; with `skip_bad` it is left out and listed in skipped.json. On any error nothing is written
and an existing `out_dir` stays as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from skelssl.data.custom_inputs import (Recordings, array_recordings, csv_labels, folder_recordings,
                                        given_lengths, labels_and_classes, load_array, npz_keys, read_class_names,
                                        split_mask)
from skelssl.data.normalize import (NormalizeOptions, channel_names_for, decide_alignment, facing_angle,
                                    normalize_sequence, resolve, valid_range)
from skelssl.data.prepared import (SKIPPED_FILE, PreparedMeta, PreparedWriter, PrepareReport, provenance,
                                   write_json_atomic)
from skelssl.errors import UserError
from skelssl.skeleton.layouts import Layout, get_layout


def _layout(layout: str | Path | Layout) -> Layout:
    if isinstance(layout, Layout):
        return layout
    try:
        return get_layout(str(layout))
    except UserError:
        raise
    except Exception as err:  # a layout YAML in any state (unparsable, wrong kinds): one line naming it
        raise UserError(f"layout '{layout}': {type(err).__name__ if not str(err) else err}") from None


def _side_array(arrays: Path, given: str | Path | None, key: str, what: str) -> tuple[np.ndarray | None, str]:
    """An array given as its own .npy (`given`) or found under `key` in the skeletons' .npz."""
    if given is not None:
        return np.asarray(load_array(Path(given), None, what, mmap=False)), str(given)
    if arrays.is_file() and key in npz_keys(arrays):
        return np.asarray(load_array(arrays, key, what, mmap=False)), f"{arrays} (array '{key}')"
    return None, ""


def _open(arrays: Path, data_key: str, labels: str | Path | None, split: str | Path | None,
          lengths: str | Path | None) -> Recordings:
    if arrays.is_dir():
        recordings = folder_recordings(arrays, Path(labels) if labels else None)
        recordings.labels = csv_labels(recordings.labels, recordings.labels_source)
        if split is not None:
            recordings.split, recordings.split_source = _side_array(arrays, split, "split", "split")
        if lengths is not None:
            raise UserError(f"{arrays}: a folder's recordings carry their own lengths; --lengths is for one array")
        return recordings
    recordings = array_recordings(arrays, data_key)
    recordings.labels, recordings.labels_source = _side_array(arrays, labels, "labels", "labels")
    if recordings.labels is None:
        raise UserError(f"{arrays}: no labels: pass --labels FILE.npy or store them under 'labels' in the .npz")
    recordings.split, recordings.split_source = _side_array(arrays, split, "split", "split")
    given, source = _side_array(arrays, lengths, "lengths", "lengths")
    if given is not None:
        recordings.lengths = given_lengths(given, source, recordings.num, recordings.frames)
    return recordings


def prepare_custom(arrays: str | Path, layout: str | Path | Layout, out_dir: str | Path,
                   labels: str | Path | None = None, split: str | Path | None = None,
                   class_names: str | Path | list[str] | None = None, name: str = "custom",
                   data_key: str = "data", lengths: str | Path | None = None, channels: str | None = None,
                   normalization: NormalizeOptions | None = None, skip_bad: bool = False) -> PrepareReport:
    """Prepare the recordings at `arrays` (module docstring); returns the report `skelssl prepare` prints."""
    start = time.perf_counter()
    arrays = Path(arrays)
    layout = _layout(layout)
    options = normalization or NormalizeOptions()
    rec = _open(arrays, data_key, labels, split, lengths)
    if rec.joints != layout.num_joints:
        raise UserError(f"{rec.source}: {rec.joints} joints per frame but layout '{layout.name}' has "
                        f"{layout.num_joints} (with (N, T, V, C) the third axis is V; check the layout or the "
                        "array's shape)")
    channel_names = channel_names_for(channels, rec.channels, rec.source)
    coordinates = sum(1 for c in channel_names if c != "score")
    steps = resolve(options, layout, coordinates)
    names_list = None
    names_source = ""
    if class_names is not None:
        names_list = read_class_names(class_names) if isinstance(class_names, (str, Path)) else \
            [str(c) for c in class_names]
        names_source = str(class_names) if isinstance(class_names, (str, Path)) else "the class names"
    label_arr, names = labels_and_classes(rec.labels, rec.labels_source, rec.num, names_list, names_source)
    train = split_mask(rec.split, rec.split_source, rec.num) if rec.split is not None else None

    # Pass 1: valid frames of every recording (and the bad ones), the directions people face.
    ranges = np.zeros((rec.num, 2), dtype=np.int64)
    skipped: list[dict] = []
    angles: list[float] = []
    for i in range(rec.num):
        try:
            seq = rec.read(i)
            if rec.lengths is not None:
                seq = seq[:int(rec.lengths[i])]
            first, stop = valid_range(seq, coordinates)
            if rec.lengths is not None:
                stop = len(seq) if stop else 0
            if not steps.trim:
                first = 0
            if stop == 0:
                raise UserError(f"{rec.where(i)}: no skeleton in any frame (all coordinates are zero)")
            if steps.align_auto and (angle := facing_angle(seq, first, steps)) is not None:
                angles.append(angle)
        except UserError as err:
            if not skip_bad:
                raise UserError(f"{err} (fix or remove it, or pass --skip-bad to leave it out)") from None
            skipped.append({"file": rec.where(i), "sample": int(i),
                            "reason": str(err).removeprefix(f"{rec.where(i)}: ")})
            continue
        ranges[i] = first, stop
    steps = decide_alignment(steps, angles)
    kept = np.flatnonzero(ranges[:, 1] > 0)
    if len(kept) == 0:
        raise UserError(f"{rec.source}: every recording was left out ({len(skipped)}); first: {skipped[0]['reason']}")
    if steps.temporal == "resample":
        out_frames = steps.frames
    else:
        out_frames = steps.frames or rec.frames

    # Pass 2: normalise and write.
    shape = (len(kept), rec.channels, out_frames, rec.joints, rec.persons)
    out_lengths = np.zeros(len(kept), dtype=np.int64)
    unapplied: dict[str, list[int]] = {}
    with PreparedWriter(out_dir, shape) as writer:
        source_frames = writer.add_array("source_frames", (len(kept),), np.int64)
        for row, i in enumerate(kept):
            seq, length, missed = normalize_sequence(rec.read(i), steps, int(ranges[i, 0]), int(ranges[i, 1]),
                                                     out_frames)
            writer.data[row] = seq.transpose(3, 0, 2, 1)
            out_lengths[row] = length
            source_frames[row] = ranges[i, 1] - ranges[i, 0]
            for what in missed:
                unapplied.setdefault(what, []).append(int(i))
        kept_labels = label_arr[kept]
        if train is not None:
            splits = {"default": {"train": np.flatnonzero(train[kept]), "test": np.flatnonzero(~train[kept])}}
        else:
            splits = {"all": {"train": np.arange(len(kept)), "test": np.zeros(0, dtype=np.int64)}}
        record = steps.to_dict(layout)
        record["not_applied"] = {what: {"count": len(idx), "samples": idx[:20]} for what, idx in unapplied.items()}
        sample_names = ([f"{name}_{i:06d}" for i in kept] if rec.names is None
                        else [rec.names[i] for i in kept])
        meta = PreparedMeta(dataset=name, layout=layout, class_names=names, labels=kept_labels,
                            lengths=out_lengths, sample_names=sample_names, splits=splits,
                            channel_names=list(channel_names),
                            provenance=provenance("prepare custom", arrays=str(arrays.resolve()),
                                                  source_shape=list(rec.shape), normalization=record,
                                                  skipped=len(skipped)))
        write_json_atomic(writer.tmp_dir / SKIPPED_FILE, skipped)
        writer.finalize(meta)
    counts = {s: {part: int(len(idx)) for part, idx in parts.items()} for s, parts in splits.items()}
    notes = [f"note: normalisation: {note}" for note in steps.notes] + [
        f"{len(idx)} recording(s) {what}: their hips/shoulders are never all present or degenerate "
        f"(e.g. sample {idx[0]})" for what, idx in unapplied.items()]
    return PrepareReport(str(out_dir), len(kept), counts, skipped, time.perf_counter() - start, notes=notes)
