"""Untrimmed synthetic sequences for action segmentation: several actions in a row, idle between, per-frame labels.

The bodies, class motions, idle motion, view and sensor noise are those of the trimmed generator
(`skelssl.data.synthetic`); only the time line differs. One sequence:

    idle | action a1 | idle | action a2 | ... | action aK | idle

with K drawn in `actions_per_sequence`, the classes drawn uniformly (no class twice in a row) and the idle gaps
in `idle_frames`. Each action lasts what it lasts in a trimmed clip of `clip_frames` frames (its duration
fraction of the clip, speed 0.7-1.4x), so an encoder pretrained on the trimmed synthetic dataset sees actions at
the speed it learnt. Idle motion (breathing, sway, small arm and head movements) runs through the whole
sequence at the trimmed clips' frequencies; the body may take a side step and stay there.

Per-frame labels follow PKU-MMD's untrimmed format (skelssl.data.pkummd): 0 = no action (idle), k >= 1 = the
class `CLASS_NAMES[k - 1]`, -1 = padding after the end of a shorter sequence. A frame is labelled
with its action from the first to the last frame of the action window, ramps included (as annotators mark an
instance from its onset to its end).

The subjects' body proportions are those of the trimmed dataset with the same seed (same subject numbers), and
the xsub split uses the same training subjects; the trimmed generator's output is unchanged by this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.data import synthetic as syn
from skelssl.data.prepared import PreparedMeta, write_prepared
from skelssl.skeleton.layouts import NTU25

__all__ = ["UntrimmedData", "generate_untrimmed", "prepare_synthetic_untrimmed", "BACKGROUND", "PADDING"]

BACKGROUND = 0  # frame label of idle frames
PADDING = -1  # frame label after the end of a sequence


@dataclass
class UntrimmedData(syn.SubjectSplit):
    """data (S, 3, T_max, 25, 2) float32 zero-padded; frame_labels (S, T_max) int16 (module docstring)."""

    data: np.ndarray
    frame_labels: np.ndarray
    lengths: np.ndarray
    subjects: np.ndarray
    class_names: tuple[str, ...]
    train_subjects: tuple[int, ...]
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """Per sequence, its most frequent action (as PKU-MMD's untrimmed labels)."""
        counts = [np.bincount(row[row > 0] - 1, minlength=len(self.class_names)) for row in self.frame_labels]
        return np.array([int(np.argmax(c)) for c in counts], dtype=np.int64)


def _time_line(rng: np.random.Generator, actions: tuple[int, int], idle: tuple[int, int], clip_frames: int,
               speed_range: tuple[float, float]) -> tuple[list[int], list[int], list[int], int]:
    """(classes, first frames, durations in frames, total frames) of one sequence."""
    count = int(rng.integers(actions[0], actions[1] + 1))
    classes: list[int] = []
    for _ in range(count):
        choices = [c for c in range(len(syn.CLASS_NAMES)) if not classes or c != classes[-1]]
        classes.append(int(rng.choice(choices)))
    starts, durations = [], []
    frame = int(rng.integers(idle[0], idle[1] + 1))
    for label in classes:
        speed = rng.uniform(*speed_range)
        fraction = np.clip(syn._BASE_DURATION.get(syn.CLASS_NAMES[label], 0.65) * rng.uniform(0.8, 1.2) / speed,
                           0.3, 0.98)  # the trimmed generator's action window, as a fraction of a clip
        length = max(int(round(fraction * (clip_frames - 1))), 4)
        starts.append(frame)
        durations.append(length)
        frame += length + int(rng.integers(idle[0], idle[1] + 1))
    return classes, starts, durations, frame


def _one_sequence(rng: np.random.Generator, scales: np.ndarray, classes: list[int], starts: list[int],
                  durations: list[int], total: int, clip_frames: int, view_range_deg: float,
                  tilt_range_deg: float, noise_std: float, second_person_prob: float) -> np.ndarray:
    """(T, V, 3, M) camera-frame joints of one untrimmed sequence."""
    time = np.arange(total, dtype=np.float64)[None] / (clip_frames - 1)  # clip units, as the trimmed clips
    bones = syn._bones(scales[None] * rng.normal(1.0, 0.01, size=(1, 4)))
    rotations: dict[int, np.ndarray] = {}
    offset, lift = np.zeros((1, total, 3)), np.zeros((1, total))
    for label, start, length in zip(classes, starts, durations):
        timing = syn._Timing(p=(np.arange(total)[None] - start) / length, phase=rng.uniform(0, 2 * np.pi, (1, 1)),
                             amp=rng.uniform(0.8, 1.2, (1, 1)), cycles=rng.uniform(0.8, 1.2, (1, 1)), rng=rng)
        motion = syn._class_motion(label, timing)  # identity rotations outside its window
        rotations = syn._merge(motion.rotations, rotations)
        offset += motion.root_offset
        lift += motion.lift
    idle = syn._idle_rotations(rng, 1, total, time=time)
    sway = syn._idle_sway(rng, 1, total, time=time)
    rest_ankle_y = syn._forward_kinematics(bones, {}, 1)[:, 0, syn.L_ANKLE, 1]
    acting = syn._forward_kinematics(bones, syn._merge(rotations, idle), total)
    root = offset + sway
    root[..., 1] += syn._ground(acting, rest_ankle_y) + lift
    yaw = syn._deg(rng.uniform(-view_range_deg, view_range_deg, size=1))
    tilt = syn._deg(rng.uniform(-tilt_range_deg, tilt_range_deg, size=1))
    shift = np.stack([rng.uniform(-0.5, 0.5, 1), rng.uniform(-0.15, 0.25, 1), rng.uniform(2.6, 3.6, 1)], -1)
    person0 = syn._place(acting + root[:, :, None, :], yaw, tilt, shift)[0]
    persons = np.zeros((total, syn.NUM_JOINTS, 3, 2))
    persons[..., 0] = person0
    if rng.random() < second_person_prob:  # a second, idle person beside the first
        other_bones = syn._bones(syn._subject_scales(rng, 1))
        other = syn._forward_kinematics(other_bones, syn._idle_rotations(rng, 1, total, 1.5, time=time), total)
        other_root = syn._idle_sway(rng, 1, total, 1.5, time=time)
        other_root[..., 1] += syn._ground(other, syn._forward_kinematics(other_bones, {}, 1)[:, 0, syn.L_ANKLE, 1])
        side = (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.7, 1.2)
        other_shift = shift + np.array([[side, 0.0, rng.uniform(-0.3, 0.3)]])
        persons[..., 1] = syn._place(other + other_root[:, :, None, :], yaw + syn._deg(rng.uniform(-30, 30)),
                                     tilt, other_shift)[0]
    if noise_std > 0:
        present = np.abs(persons).sum(axis=(0, 1, 2)) > 0
        persons = persons + rng.normal(0.0, noise_std, size=persons.shape) * present
    return persons


def generate_untrimmed(
    num_sequences_per_subject: int = 4,
    num_subjects: int = 10,
    num_train_subjects: int = 7,
    actions_per_sequence: tuple[int, int] = (3, 6),
    idle_frames: tuple[int, int] = (10, 40),
    clip_frames: int = 50,
    seed: int = 0,
    view_range_deg: float = 90.0,
    tilt_range_deg: float = 20.0,
    speed_range: tuple[float, float] = (0.7, 1.4),
    noise_std: float = 0.01,
    second_person_prob: float = 0.25,
) -> UntrimmedData:
    """Untrimmed sequences (module docstring), `num_sequences_per_subject` per subject; deterministic from `seed`."""
    lo, hi = actions_per_sequence
    if num_sequences_per_subject < 1 or not 1 <= lo <= hi or not 0 <= idle_frames[0] <= idle_frames[1] \
            or clip_frames < 8 or not 0 < num_train_subjects < num_subjects:
        raise ValueError("need num_sequences_per_subject >= 1, 1 <= actions_per_sequence[0] <= [1], 0 <= "
                         "idle_frames[0] <= [1], clip_frames >= 8 and 0 < num_train_subjects < num_subjects")
    arguments = dict(num_sequences_per_subject=num_sequences_per_subject, num_subjects=num_subjects,
                     num_train_subjects=num_train_subjects, actions_per_sequence=[lo, hi],
                     idle_frames=list(idle_frames), clip_frames=clip_frames, seed=seed,
                     view_range_deg=view_range_deg, tilt_range_deg=tilt_range_deg, speed_range=list(speed_range),
                     noise_std=noise_std, second_person_prob=second_person_prob)
    subject_seq, _, untrimmed_seq = np.random.SeedSequence(seed).spawn(3)  # the trimmed dataset uses the first two
    subject_scales = syn._subject_scales(np.random.default_rng(subject_seq), num_subjects)
    rng = np.random.default_rng(untrimmed_seq)
    subjects = np.repeat(np.arange(num_subjects), num_sequences_per_subject)
    sequences, labels = [], []
    for subject in subjects:
        classes, starts, durations, total = _time_line(rng, (lo, hi), idle_frames, clip_frames, speed_range)
        sequences.append(_one_sequence(rng, subject_scales[subject], classes, starts, durations, total, clip_frames,
                                       view_range_deg, tilt_range_deg, noise_std, second_person_prob))
        frame_labels = np.full(total, BACKGROUND, dtype=np.int16)
        for label, start, length in zip(classes, starts, durations):
            frame_labels[start:start + length] = label + 1
        labels.append(frame_labels)
    lengths = np.array([len(seq) for seq in sequences], dtype=np.int64)
    t_max = int(lengths.max())
    data = np.zeros((len(sequences), 3, t_max, syn.NUM_JOINTS, 2), dtype=np.float32)
    frame_labels = np.full((len(sequences), t_max), PADDING, dtype=np.int16)
    for i, (seq, row) in enumerate(zip(sequences, labels)):
        data[i, :, :len(seq)] = seq.transpose(2, 0, 1, 3)
        frame_labels[i, :len(row)] = row
    return UntrimmedData(data=data, frame_labels=frame_labels, lengths=lengths, subjects=subjects.astype(np.int64),
                         class_names=syn.CLASS_NAMES, train_subjects=tuple(range(num_train_subjects)),
                         arguments=arguments)


def prepare_synthetic_untrimmed(out_dir: str | Path, recipe: str = "aimclr", **kwargs: Any) -> Path:
    """Generate untrimmed sequences and write them in the prepared format: split "xsub", per-sequence label the
    most frequent action, extra array `frame_labels` (S, T_max) int16 (0 idle, k = class k-1, -1 padding).

    recipe "aimclr" (default) centres and aligns every frame as the trimmed synthetic dataset's default recipe
    does (`synthetic.normalize_view`), so that an encoder pretrained there sees the same kind of input.
    """

    if recipe not in ("aimclr", "raw"):
        raise ValueError(f"recipe must be 'aimclr' or 'raw', got '{recipe}'")
    made = generate_untrimmed(**kwargs)
    if recipe == "aimclr":
        made.data = syn.normalize_view(made.data)
    meta = PreparedMeta(
        dataset="synthetic-untrimmed",
        layout=NTU25,
        class_names=list(made.class_names),
        labels=made.labels,
        lengths=made.lengths,
        sample_names=[f"S{s:03d}U{i:04d}" for i, s in enumerate(made.subjects)],
        splits={"xsub": {"train": made.train_indices, "test": made.test_indices}},
        provenance={"generator": "skelssl.data.synthetic_untrimmed.generate_untrimmed", "recipe": recipe,
                    **made.arguments, "train_subjects": list(made.train_subjects),
                    "frame_labels": "0 = no action, k = class_names[k-1], -1 = padding"},
    )
    return write_prepared(out_dir, made.data, meta, extra={"frame_labels": made.frame_labels})
