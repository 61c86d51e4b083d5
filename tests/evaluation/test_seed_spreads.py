"""Results over pretraining seeds (skelssl.evaluation.spread): means, sample deviations and marks, by hand."""

from __future__ import annotations

import pytest

from skelssl.evaluation.results import ResultRecord
from skelssl.evaluation.spread import differs, spread_table, summarize_seeds


def _records(model: str, values: list[float], metric: str = "top1") -> list[ResultRecord]:
    return [ResultRecord("nwucla", "xview", model, "joint", "logistic", metric, v) for v in values]


def test_mean_and_sample_deviation_per_cell_and_the_marks():
    summaries = summarize_seeds(_records("actclr", [70, 72, 74]) + _records("random_init@stgcn", [60, 61, 62])
                                + _records("aimclr", [60, 64]) + _records("skeletonclr", [50, 52]))
    by_model = {s.model: s for s in summaries}
    assert (by_model["actclr"].mean, by_model["actclr"].sd, by_model["actclr"].seeds) == (72.0, 2.0, 3)
    assert by_model["aimclr"].sd == pytest.approx(8 ** 0.5)  # sample sd of 60, 64: sqrt(((-2)² + 2²) / 1)
    base = by_model["random_init@stgcn"]
    assert differs(by_model["actclr"], base) == 1  # 72 - 61 = 11 > 2 + 1
    assert differs(by_model["aimclr"], base) == 0  # 1 < 2.83 + 1
    assert differs(by_model["skeletonclr"], base) == -1  # -10, beyond 1.41 + 1
    table = spread_table(summaries, reference=lambda model: "random_init@stgcn")
    assert "| actclr            | 72.0 ± 2.0 (3) + |" in table
    assert "60.0 ± 2.8" not in table and "62.0 ± 2.8 (2) =" in table and "51.0 ± 1.4 (2) −" in table
    assert "61.0 ± 1.0 (3) |" in table  # the reference row itself carries no mark


def test_a_single_seed_has_no_spread_and_equal_means_never_differ():
    one = summarize_seeds(_records("a", [50.0]) + _records("b", [50.0]))
    assert one[0].sd == 0.0 and one[0].seeds == 1
    assert differs(one[0], one[1]) == 0


def test_report_seeds_pools_runs_and_marks_against_random_init(tmp_path, capsys):
    import json

    from skelssl.cli import main

    keys = ("dataset", "split", "model", "stream", "protocol", "metric", "value")
    for seed, (ours, random) in enumerate([(70.0, 60.0), (74.0, 62.0)]):
        run = tmp_path / f"actclr-seed{seed}"
        run.mkdir()
        rows = [("d", "s", "actclr", "joint", "logistic", "top1", ours),
                ("d", "s", "random_init", "joint", "logistic", "top1", random)]
        (run / "results.json").write_text(json.dumps([dict(zip(keys, row)) for row in rows]))
    assert main(["report", "--seeds", str(tmp_path / "actclr-seed0"), str(tmp_path / "actclr-seed1")]) == 0
    out = capsys.readouterr().out
    # 72 ± 2.83 against 61 ± 1.41: 11 > 4.24
    assert "| actclr      | 72.0 ± 2.8 (2) + |" in out and "| random_init |   61.0 ± 1.4 (2) |" in out
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps([dict(zip(keys, ("e", "s", "x", "joint", "knn", "top1", 1.0)))]))
    assert main(["report", "--seeds", str(tmp_path / "actclr-seed0"), str(other)]) != 0
    assert "one dataset, split and stream" in capsys.readouterr().err
