"""Rerun the bad inputs and faults of issue 21 as a user would, and print what each one gives.

    python benchmarks/probe_bad_inputs.py [--work DIR] [--only NAME ...]

Every case runs `skelssl ...` in a subprocess on scratch data (a tiny synthetic dataset, a tiny pretrained
run, and 40 NW-UCLA sequences from ../shared/data when it is there) and prints its exit code, whether a
traceback appeared, the first line it printed, and the check that follows it (the user's files still there,
results.json still JSON, config.yaml unchanged...). A case passes when it gives a result or a clear error
(exit 0 or 2, no traceback) and its check holds. The table is what issue 21's closing note quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = ["model.stgcn.hidden_channels=4", "model.stgcn.out_channels=16", "method.queue_size=64",
        "method.feature_dim=8", "method.momentum=0.9", "trainer.batch_size=8", "trainer.progress_bar=false",
        "trainer.accelerator=cpu", "trainer.devices=1", "optim.milestones=[1]", "monitor.knn_every_n_epochs=0",
        "tracking.loggers=[csv]"]


@dataclass
class Outcome:
    code: int
    text: str

    @property
    def first_line(self) -> str:
        lines = [line for line in self.text.splitlines() if line.strip() and not line.startswith("[")]
        return lines[0].strip() if lines else ""

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.text


def skelssl(*argv: str, cwd: Path) -> Outcome:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    done = subprocess.run([sys.executable, "-m", "skelssl.cli", "--no-progress", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    return Outcome(done.returncode, done.stderr.strip() + "\n" + done.stdout.strip() if done.returncode
                   else done.stdout.strip() + "\n" + done.stderr.strip())


class Probe:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.rows: list[tuple[str, Outcome, str, bool]] = []

    def case(self, name: str, argv: list[str], check: Callable[[Outcome], tuple[bool, str]] | None = None,
             expect_ok: bool | None = None) -> Outcome:
        outcome = skelssl(*argv, cwd=self.work)
        detail, held = "", True
        if check is not None:
            held, detail = check(outcome)
        if expect_ok is True:
            held = held and outcome.code == 0
        if expect_ok is False:
            held = held and outcome.code == 2
        clear = outcome.code in (0, 2) and not outcome.traceback
        self.rows.append((name, outcome, detail, clear and held))
        return outcome

    def table(self) -> str:
        lines = []
        for name, outcome, detail, passed in self.rows:
            mark = "ok  " if passed else "FAIL"
            shown = outcome.first_line[:150] + ("…" if len(outcome.first_line) > 150 else "")
            lines.append(f"{mark} {name}\n       exit {outcome.code}{' TRACEBACK' if outcome.traceback else ''}: "
                         f"{shown}" + (f"\n       check: {detail}" if detail else ""))
        passed = sum(1 for row in self.rows if row[3])
        lines.append(f"\n{passed} of {len(self.rows)} cases give a result or a clear error and pass their check")
        return "\n".join(lines)


def _is_json(path: Path) -> tuple[bool, str]:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return False, f"{path.name} is not valid JSON ({err})"
    return True, f"{path.name} is valid JSON"


def _prepare_scratch(work: Path) -> dict[str, Path]:
    paths = {"synthetic": work / "data" / "synthetic"}
    out = skelssl("prepare", "synthetic", "--out", str(paths["synthetic"]), "--per-subject", "1", "--frames", "16",
                  cwd=work)
    if out.code:
        raise SystemExit(f"cannot prepare the scratch dataset: {out.text}")
    ucla = SHARED / "nw_ucla" / "all_sqe"
    if ucla.is_dir():
        raw = work / "raw_ucla"
        raw.mkdir()
        for f in sorted(ucla.glob("*.json"))[::37][:40]:
            shutil.copy(f, raw / f.name)
        paths["ucla_raw"] = raw
    return paths


def run_cases(probe: Probe, paths: dict[str, Path], only: set[str]) -> None:
    work = probe.work
    data = str(paths["synthetic"])

    def wanted(group: str) -> bool:
        return not only or group in only

    P = ["pretrain", f"data.root={data}", "trainer.epochs=1", *TINY]
    if wanted("data-loss") and "ucla_raw" in paths:
        user = work / "userdir"
        user.mkdir()
        (user / "notes.txt").write_text("my notes\n")
        probe.case("prepare nw-ucla --out userdir (a folder of the user's)",
                   ["prepare", "nw-ucla", "--raw", str(paths["ucla_raw"]), "--out", str(user)],
                   lambda o: ((user / "notes.txt").is_file(),
                              f"userdir/notes.txt {'survives' if (user / 'notes.txt').is_file() else 'is GONE'}"),
                   expect_ok=False)
        cust = work / "cust"
        cust.mkdir()
        (cust / "good.npz").write_bytes(b"user data")
        probe.case("prepare nw-ucla --out cust/good.npz (an existing file)",
                   ["prepare", "nw-ucla", "--raw", str(paths["ucla_raw"]), "--out", str(cust / "good.npz")],
                   lambda o: ((cust / "good.npz").read_bytes() == b"user data" if (cust / "good.npz").is_file()
                              else False, f"good.npz {'intact' if (cust / 'good.npz').is_file() else 'GONE'}, "
                                          f"entries: {sorted(p.name for p in cust.iterdir())}"), expect_ok=False)
        prepared = work / "ucla_prepared"
        old = work / "ucla_prepared.old"
        old.mkdir()
        (old / "keep.txt").write_text("the user's\n")
        probe.case("prepare nw-ucla twice into one --out, beside a user folder OUT.old",
                   ["prepare", "nw-ucla", "--raw", str(paths["ucla_raw"]), "--out", str(prepared)])
        probe.case("  ... the second time (replaces the prepared dataset)",
                   ["prepare", "nw-ucla", "--raw", str(paths["ucla_raw"]), "--out", str(prepared)],
                   lambda o: ((old / "keep.txt").is_file() and (prepared / "meta.json").is_file(),
                              f"OUT.old/keep.txt {'survives' if (old / 'keep.txt').is_file() else 'is GONE'}; "
                              f"entries beside: {sorted(p.name for p in work.iterdir() if 'ucla_prepared' in p.name)}"),
                   expect_ok=True)
        user_run = work / "user_run"
        user_run.mkdir()
        (user_run / "notes.txt").write_text("mine\n")
        probe.case("pretrain run_dir=<a folder of the user's> overwrite=true",
                   [*P, f"run_dir={user_run}", "overwrite=true"],
                   lambda o: ((user_run / "notes.txt").is_file(),
                              f"notes.txt {'survives' if (user_run / 'notes.txt').is_file() else 'is GONE'}"),
                   expect_ok=False)
        probe.case("report runs --out <an existing file of the user's>",
                   ["report", str(work), "--out", str(user / "notes.txt")],
                   lambda o: ((user / "notes.txt").read_text() == "my notes\n",
                              "notes.txt unchanged" if (user / "notes.txt").read_text() == "my notes\n"
                              else "notes.txt OVERWRITTEN"), expect_ok=False)

    run = work / "runs" / "tiny"
    if wanted("silent") or wanted("tracebacks") or wanted("retries"):
        out = skelssl(*P[:2], "trainer.epochs=2", *TINY, f"run_dir={run}", cwd=work)
        if out.code:
            raise SystemExit(f"cannot pretrain the scratch run: {out.text}")
    ckpt = run / "checkpoints" / "last.ckpt"

    if wanted("silent"):
        import torch

        huge = work / "data" / "huge"
        shutil.copytree(paths["synthetic"], huge)
        arr = np.load(huge / "data.npy", mmap_mode="r+")
        arr *= np.float32(1e30)
        arr.flush()
        del arr
        probe.case("pretrain on coordinates scaled by 1e30 (prepared, then edited)",
                   ["pretrain", f"data.root={huge}", "trainer.epochs=1", *TINY, f"run_dir={work / 'runs/huge'}"],
                   expect_ok=False)
        arrays = work / "huge_arrays.npz"
        x = np.random.default_rng(0).normal(size=(6, 20, 25, 3)).astype(np.float32) * np.float32(1e30)
        np.savez(arrays, data=x, labels=np.array([0, 1, 0, 1, 0, 1]))
        probe.case("prepare custom on coordinates of 1e30",
                   ["prepare", "custom", "--arrays", str(arrays), "--layout", "ntu25", "--out",
                    str(work / "data" / "huge_custom")], expect_ok=False)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        name = next(k for k in state["state_dict"] if k.startswith("encoder_q.") and k.endswith("weight"))
        state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
        nan_ckpt = work / "nan.ckpt"
        torch.save(state, nan_ckpt)
        probe.case("evaluate knn on a checkpoint with a NaN weight tensor",
                   ["evaluate", "knn", "--checkpoint", str(nan_ckpt), "--out", str(work / "eval_nan")],
                   lambda o: (name in o.text, f"names the tensor {name}: {name in o.text}"), expect_ok=False)
        no_test = work / "data" / "no_test"
        shutil.copytree(paths["synthetic"], no_test)
        meta = json.loads((no_test / "meta.json").read_text())
        for parts in meta["splits"].values():
            parts["train"] = sorted(parts["train"] + parts["test"])
            parts["test"] = []
        (no_test / "meta.json").write_text(json.dumps(meta))
        out_dir = work / "eval_empty"
        probe.case("evaluate knn on a split whose test part is empty",
                   ["evaluate", "knn", "--checkpoint", str(ckpt), f"data.root={no_test}", "--out", str(out_dir)],
                   lambda o: _is_json(out_dir / "results.json") if (out_dir / "results.json").exists()
                   else (True, "no results.json written"), expect_ok=False)
        probe.case("evaluate knn eval.knn.k=[0]",
                   ["evaluate", "knn", "--checkpoint", str(ckpt), "eval.knn.k=[0]", "--out", str(work / "e0")],
                   expect_ok=False)
        probe.case("pretrain method.momentum=2", [*P, "method.momentum=2", f"run_dir={work / 'runs/m2'}"],
                   expect_ok=False)
        probe.case("pretrain optim.milestones=abc", [*P, "optim.milestones=abc", f"run_dir={work / 'runs/ms'}"],
                   expect_ok=False)
        before = (run / "config.yaml").read_text()
        probe.case("resume a finished 2-epoch run with trainer.epochs=1",
                   [*P[:2], *TINY, f"run_dir={run}", "resume=true", "trainer.epochs=1"],
                   lambda o: ((run / "config.yaml").read_text() == before,
                              "config.yaml unchanged" if (run / "config.yaml").read_text() == before
                              else "config.yaml CHANGED"), expect_ok=False)

    if wanted("tracebacks"):
        bad_yaml = work / "bad.yaml"
        bad_yaml.write_text("trainer:\n  epochs: 1\noptim:\n  milestones: [1, 2\n")
        for i, extra in enumerate(["trainer.epochs=abc", "trainer.seed=abc", "optim.lr=abc", "optim.lr=-1",
                                   "trainer.precision=foo", "trainer.accelerator=gpu", "trainer.devices=abc",
                                   "data.num_workers=-2", "model.stgcn.hidden_channels=0",
                                   "method.temperature=0"]):
            rd = work / "runs" / f"tb{i}"
            probe.case(f"P {extra}", [*P, extra, f"run_dir={rd}"],
                       lambda o, rd=rd: (not rd.exists(), "no run_dir left behind" if not rd.exists()
                                         else f"run_dir LEFT: {sorted(p.name for p in rd.iterdir())}"),
                       expect_ok=False)
        probe.case("P --config bad.yaml (an unclosed '[')", [*P, "--config", str(bad_yaml)],
                   lambda o: ("bad.yaml:5:1:" in o.first_line, "names the file, line 5 and column 1"),
                   expect_ok=False)
        import torch

        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        del state["hyper_parameters"]["cfg"]
        no_cfg = work / "nocfg.ckpt"
        torch.save(state, no_cfg)
        probe.case("evaluate knn --checkpoint X.ckpt whose hyper_parameters lack cfg",
                   ["evaluate", "knn", "--checkpoint", str(no_cfg)], expect_ok=False)

    if wanted("retries"):
        rd = work / "runs" / "retry"
        probe.case("pretrain that fails on a missing dataset", [*P[:1], f"data.root={work / 'nowhere'}",
                                                                 "data.dataset=nw-ucla", *TINY, f"run_dir={rd}"],
                   expect_ok=False)
        probe.case("  ... retried with the dataset", [*P, f"run_dir={rd}"], expect_ok=True)
        killed = work / "runs" / "killed"
        killed.mkdir(parents=True)
        shutil.copy(run / "config.yaml", killed / "config.yaml")  # as a kill before the first checkpoint leaves
        (killed / "command.txt").write_text("skelssl pretrain ...\n")
        probe.case("a run killed before its first checkpoint, retried", [*P, f"run_dir={killed}"], expect_ok=True)
        killed2 = work / "runs" / "killed2"
        shutil.copytree(killed, killed2, ignore=shutil.ignore_patterns("checkpoints"))
        shutil.rmtree(killed2 / "checkpoints", ignore_errors=True)
        probe.case("  ... or resumed", [*P, f"run_dir={killed2}", "resume=true"], expect_ok=True)
        meta_bad = work / "data" / "labels5"
        shutil.copytree(paths["synthetic"], meta_bad)
        meta = json.loads((meta_bad / "meta.json").read_text())
        meta["labels"] = meta["labels"][:-1]
        (meta_bad / "meta.json").write_text(json.dumps(meta))
        probe.case("info on a dataset whose meta.json has one label too few", ["info", str(meta_bad)],
                   lambda o: ("'labels'" in o.first_line, "blames 'labels'"), expect_ok=False)
        probe.case("evaluate knn --checkpoint RUN (a run directory)",
                   ["evaluate", "knn", "--checkpoint", str(run), "--out", str(work / "eval_dir")], expect_ok=True)
        fallback = work / "runs" / "fallback"
        shutil.copytree(run, fallback)
        (fallback / "checkpoints" / "last.ckpt").write_bytes(b"cut short")
        probe.case("resume with last.ckpt damaged (falls back to previous.ckpt)",
                         [*P[:2], *TINY, f"run_dir={fallback}", "resume=true", "trainer.epochs=3"],
                         lambda o: (o.text.count("resuming from the checkpoint before it") == 1,
                                    f"fallback notice printed {o.text.count('resuming from the checkpoint before it')}"
                                    " time(s)"), expect_ok=True)
        inf_data = work / "data" / "inf"
        shutil.copytree(paths["synthetic"], inf_data)
        arr = np.load(inf_data / "data.npy", mmap_mode="r+")
        arr[0, 0, 0, 0, 0] = np.inf
        arr.flush()
        del arr
        probe.case("info on data holding inf", ["info", str(inf_data)],
                   lambda o: (o.text.count("RuntimeWarning") == 0,
                              f"numpy RuntimeWarning printed {o.text.count('RuntimeWarning')} time(s)"),
                   expect_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--only", nargs="*", default=[],
                        help="groups: data-loss silent tracebacks retries (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        probe = Probe(work)
        run_cases(probe, _prepare_scratch(work), set(args.only))
        print(probe.table())


if __name__ == "__main__":
    main()
