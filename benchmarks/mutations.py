"""The mutation list: deliberate breakages the test suite must catch, one per bug fixed or mechanism guarded.

    python benchmarks/mutations.py [--only NAME ...] [--list]

Each entry replaces one snippet of a source file (it must occur exactly once) in a scratch copy of the
repository (its tracked files, with ../shared linked beside it), runs the tests named with it there and throws
the copy away: the working tree is never touched, so the list can run while you work. The entry is killed when
those tests fail, and survives when they still pass: then the tests cannot tell the broken code from the right
one, a defect to fix. Entries live here and in benchmarks/mutation_lists/*.py (one module per area, each a list
`ENTRIES` of dicts with this class's fields). Prints one line per entry and ends with
`mutations: K of M killed`; exits 1 if any survived. Every bug fixed adds an entry.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str


M = Mutation
MUTATIONS = [
    # issue 21: --out and run_dir replace only what skelssl wrote
    M("out-owner-ignored", "skelssl/outputs.py", "    problem = owner_problem(path)\n", "    problem = None\n",
      ("tests/data/test_outputs.py",), "a folder of the user's was replaced (and deleted) as if skelssl wrote it"),
    M("out-file-accepted", "skelssl/outputs.py", "    if path.is_symlink() or not path.is_dir():\n",
      "    if False:\n", ("tests/data/test_outputs.py::test_an_existing_file_is_refused_and_kept",),
      "an existing file given as --out was renamed away"),
    M("replace-no-restore", "skelssl/outputs.py", "        os.replace(aside, target)\n        raise\n",
      "        raise\n", ("tests/data/test_outputs.py::test_a_failed_rename_puts_the_earlier_output_back",),
      "a failed rename lost the earlier dataset"),
    M("stale-staging-kept", "skelssl/data/prepared.py", "    if out_dir.parent.is_dir():\n        for path in",
      "    if False:\n        for path in",
      ("tests/data/test_ntu.py::test_skip_bad_reports_every_file_and_missing_skeletons",),
      "what a killed prepare staged stays on disk forever"),
    M("run-dir-foreign-accepted", "skelssl/train.py", "    if foreign and not is_run:\n", "    if False:\n",
      ("tests/test_run_dir.py::test_a_folder_of_the_users_is_never_a_run_dir",),
      "a folder of the user's became a run directory"),
    M("killed-run-blocks-retry", "skelssl/train.py", "    if is_run and not run_has_checkpoint(run_dir):\n",
      "    if False:\n", ("tests/test_run_dir.py::test_a_run_killed_before_its_first_checkpoint_starts_again",),
      "a run killed before its first checkpoint could only be retried with overwrite=true"),
    M("resume-shortens-run", "skelssl/train.py", "        if int(cfg.trainer.epochs) < trained:\n",
      "        if False:\n", ("tests/test_run_dir.py::test_resume_cannot_shorten_a_finished_run",),
      "resuming a finished run with fewer epochs was accepted and rewrote config.yaml"),
    M("refused-start-writes", "skelssl/train.py",
      "    start = prepare_run_dir(cfg)  # refusals come before anything is written\n",
      "    start = prepare_run_dir(cfg)  # refusals come before anything is written\n    start.apply(cfg, [])\n",
      ("tests/test_run_dir.py::test_a_refused_start_writes_nothing",),
      "a refused start left a run_dir that blocked the retry"),
    M("results-without-run-cleared", "skelssl/train.py", "    if not is_run:  # evaluate's", "    if False:  # evaluate's",
      ("tests/test_run_dir.py::test_results_without_a_run_stay_when_a_run_starts_beside_them",),
      "a pretrain into a folder holding evaluate's results.json deleted it"),
    M("failed-start-left-behind", "skelssl/train.py", "            shutil.rmtree(self.run_dir, ignore_errors=True)\n",
      "            pass\n", ("tests/test_run_dir.py::test_a_failure_while_the_trainer_is_built_leaves_no_new_folder",),
      "a start that failed while the trainer was built left its folder"),
    M("fallback-said-twice", "skelssl/checkpoints.py", "        if path == previous and not quiet:\n",
      "        if path == previous:\n",
      ("tests/test_run_dir.py::test_the_fallback_to_the_previous_checkpoint_is_said_once",),
      "the previous.ckpt fallback notice was printed twice"),
    M("report-overwrites-users-file", "skelssl/outputs.py", "        if first.strip() != REPORT_MARK:\n",
      "        if False:\n",
      ("tests/evaluation/test_evaluate_refusals.py::"
       "test_an_out_that_is_a_users_file_is_refused_by_evaluate_report_and_analyze",),
      "report --out overwrote a file of the user's"),
    # issue 21: every config value checked at composition
    M("rule-bounds-ignored", "skelssl/settings.py", "        if (self.ge is not None and value < self.ge) or",
      "        if False and (self.ge is not None and value < self.ge) or",
      ("tests/test_config_rules.py",), "momentum=2, lr=-1, num_workers=-2 were accepted"),
    M("no-validation", "skelssl/config.py", "    validate_config(cfg, sources)\n    return cfg\n",
      "    return cfg\n", ("tests/test_config_rules.py",), "values were checked by nobody (tracebacks, silent runs)"),
    M("sections-unchecked", "skelssl/settings.py", "            found[path] = Section()\n", "",
      ("tests/test_config_rules.py::test_a_value_where_a_section_belongs_is_named",),
      "optim: 5 replaced a whole section unchecked"),
    M("yaml-error-without-place", "skelssl/yamlio.py",
      '        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)\n',
      "        where = str(path)\n",
      ("tests/test_config_rules.py::test_a_yaml_syntax_error_names_file_line_and_column",),
      "a YAML syntax error named neither the line nor the column"),
    M("evaluate-overrides-unchecked", "skelssl/evaluation/loading.py",
      '    validate_evaluation_config(cfg, [(f"the config saved in {path}", saved_dict), ("the command line", '
      'overrides or {})])\n',
      "", ("tests/evaluation/test_evaluate_refusals.py::test_k_below_one_is_refused_at_composition",),
      "eval.knn_k=[0] reported weighted_k0 = 50 %"),
    # issue 21: silently wrong results
    M("empty-part-accepted", "skelssl/evaluation/runner.py", "        require_train_and_test(cfg)\n", "",
      ("tests/evaluation/test_evaluate_refusals.py::test_an_empty_part_is_refused_before_any_work",),
      "an empty test part printed nan and wrote bare NaN into results.json"),
    M("nan-result-written", "skelssl/evaluation/results.py", "    if bad is not None:  # JSON has no NaN",
      "    if False:  # JSON has no NaN",
      ("tests/evaluation/test_evaluate_refusals.py::test_a_nan_result_is_not_written_and_results_json_stays_json",),
      "results.json could hold NaN (not JSON)"),
    M("coordinate-limit-off", "skelssl/data/values.py", "    return np.abs(values) <= COORDINATE_LIMIT\n",
      "    return np.isfinite(values)\n", ("tests/test_guards.py",),
      "coordinates of 1e30 trained to one feature for every sequence"),
    M("batchnorm-statistics-unchecked", "skelssl/methods/core/base.py",
      "        statistic = first_nonfinite(batchnorm_statistics(self._batchnorms))\n", "        statistic = None\n",
      ("tests/test_guards.py::test_a_batchnorm_statistic_gone_infinite_stops_the_run_though_the_loss_is_finite",),
      "running_var became inf with a finite loss and the run 'finished'"),
    M("weights-unchecked", "skelssl/methods/core/base.py",
      "        weight = first_nonfinite(self.named_parameters())\n", "        weight = None\n",
      ("tests/test_guards.py::test_a_weight_gone_infinite_in_the_optimiser_step_stops_the_run",),
      "a weight gone inf in the optimiser step was saved"),
    M("nan-checkpoint-accepted", "skelssl/checkpoints.py", "    bad = first_nonfinite(state.items())\n",
      "    bad = None\n", ("tests/test_guards.py::test_a_checkpoint_with_a_nan_tensor_is_refused_naming_it",),
      "a checkpoint with a NaN weight evaluated to 50 % on every metric"),
    M("info-statistics-of-unusable-samples", "skelssl/data/normalize.py",
      "    sample = sample[usable_values(sample.reshape(len(sample), -1)).all(axis=1)]\n", "",
      ("tests/test_guards.py::test_info_on_unusable_values_prints_no_library_warning_and_no_statistics_of_them",),
      "info printed numpy's RuntimeWarning twice and warnings computed from inf"),
    # issue 21: misleading messages
    M("labels-count-blames-lengths", "skelssl/data/prepared.py", "                            count=n_data)\n",
      "                            count=None)\n",
      ("tests/data/test_hostile_inputs.py::test_info_on_meta_and_data_that_disagree",),
      "5 labels for 6 samples blamed 'lengths'"),
    M("msr-list-names-doubled", "skelssl/data/msr.py", '.removesuffix("_skeleton3D.txt")', "",
      ("tests/data/test_ucla_msr.py::test_msr_file_list_by_stem_or_by_whole_file_name",),
      "a file list with whole names looked for ..._skeleton3D.txt_skeleton3D.txt"),
    M("layout-path-repeated", "skelssl/data/prepared.py",
      "        raise PreparedDatasetError(text if text.startswith(str(meta_path)) else\n",
      "        raise PreparedDatasetError(text if False else\n",
      ("tests/data/test_hostile_inputs.py::test_a_layout_error_in_meta_json_names_the_file_once",),
      "a layout error in meta.json named the file twice"),
    M("run-dir-not-a-checkpoint", "skelssl/checkpoints.py",
      "    if path.is_dir():\n        if (path / LAST_CHECKPOINT)", "    if False:\n        if (path / LAST_CHECKPOINT)",
      ("tests/evaluation/test_evaluate_refusals.py::test_a_run_directory_stands_for_its_last_checkpoint",),
      "evaluate --checkpoint RUN said the checkpoint does not exist"),
    # issue 22: other projects' checkpoints, evaluation without methods
    M("import-fc-conv-unsqueezed", "skelssl/interop/torchlight.py",
      "                weight = weight[:, :, 0, 0]  # a 1x1 convolution", "                weight = weight  # a 1x1 convolution",
      ("tests/interop/test_import.py::test_a_torchlight_linear_eval_checkpoint_computes_what_its_source_computes",),
      "the authors' 1x1-conv classifier was not read as a linear layer"),
    M("import-module-prefix-kept", "skelssl/interop/sources.py",
      "    if tensors and all(key.startswith(\"module.\") for key in tensors):",
      "    if False:",
      ("tests/interop/test_import.py::test_a_torchlight_linear_eval_checkpoint_computes_what_its_source_computes",),
      "a DataParallel checkpoint (module. keys) was not recognised"),
    M("import-leftover-ignored", "skelssl/interop/imported.py", "        if self.left:\n", "        if False:\n",
      ("tests/interop/test_import.py::test_every_tensor_is_accounted_for_or_named",),
      "a tensor of the file that fits nowhere was dropped silently"),
    M("import-graph-as-paper", "skelssl/interop/torchlight.py",
      "                placer.place(key, target_prefix + _block_rename(rest))",
      "                placer.place(key, target_prefix + _block_rename(rest)) if rest != \"A\" else placer.left.pop(key)",
      ("tests/interop/test_import.py::test_every_tensor_is_accounted_for_or_named",),
      "the file's spatial partition A was dropped (skelssl's own graph used instead)"),
    M("import-no-expected-normalisation", "skelssl/interop/torchlight.py",
      "head=head_info, expects=NTU_AIMCLR_EXPECTS if layout == \"ntu25\" else None,",
      "head=head_info, expects=None,",
      ("tests/interop/test_import.py::test_a_torchlight_linear_eval_checkpoint_computes_what_its_source_computes",),
      "an imported NTU model did not say it expects the aimclr preparation"),
    M("predict-labels-by-position", "skelssl/evaluation/predict.py",
      "    mapping = np.array([position[name] for name in meta.class_names])",
      "    mapping = np.arange(len(meta.class_names))",
      ("tests/interop/test_import.py::test_predict_scores_a_dataset_whose_classes_are_a_reordered_subset",),
      "a dataset naming the classifier's classes in another order was scored by position"),
    M("random-init-not-the-runs-start", "skelssl/evaluation/loading.py", "            torch.manual_seed(seed)\n",
      "            torch.manual_seed(seed + 1)\n",
      ("tests/evaluation/test_trained_protocols.py::test_supervised_starts_from_the_runs_random_init",),
      "the random-init baseline was not the encoder the run started from"),
    M("saved-probe-without-zscore", "skelssl/evaluation/backbone.py",
      "standardize=mean is not None)", "standardize=False)",
      ("tests/evaluation/test_trained_protocols.py::test_saved_classifiers_predict_what_their_protocol_measured",),
      "a saved linear probe dropped its feature standardisation: predict disagreed with the probe's accuracy"),
    M("probe-defaults-differ", "skelssl/protocol_configs.py", "    lr: float = field_setting(number(0.1, gt=0))\n    momentum: float = field_setting(number(0.9, ge=0, lt=1))\n    weight_decay: float = field_setting(number(0.0, ge=0))",
      "    lr: float = 3.0\n    momentum: float = field_setting(number(0.9, ge=0, lt=1))\n    weight_decay: float = field_setting(number(0.0, ge=0))",
      ("tests/test_configs.py::test_a_probe_built_in_code_trains_what_the_cli_trains",),
      "LinearProbeConfig's lr was 3.0 where the CLI's eval.linear_lr was 0.1"),
    M("flat-eval-keys-lost", "skelssl/defaults.py", "    ) for key in keys},\n", "    ) for key in keys if False},\n",
      ("tests/test_configs.py::test_the_flat_eval_keys_of_earlier_versions_name_their_section_and_migrate",),
      "a checkpoint saved with eval.linear_lr lost the value when the keys moved to sections"),
    M("pku-camera-coordinates", "skelssl/data/pkummd.py", "                    if recipe is not None:\n",
      "                    if False:\n",
      ("tests/data/test_formats_pku.py::test_pkummd_is_prepared_with_the_ntu_aimclr_preset_by_default",),
      "PKU-MMD kept camera coordinates zero-padded to the longest instance (not the authors' NTU pipeline)"),
]


def area_entries() -> list[Mutation]:
    """The entries of benchmarks/mutation_lists/*.py, in file order."""
    entries = []
    for path in sorted((ROOT / "benchmarks" / "mutation_lists").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"mutation_list_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        entries += [Mutation(**{**entry, "tests": tuple(entry["tests"])}) for entry in module.ENTRIES]
    return entries


def scratch_copy(into: Path) -> Path:
    """A copy of the repository's tracked files under `into`, with the shared data linked beside it."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    copy = into / ROOT.name
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    if (ROOT.parent / "shared").exists():
        os.symlink(ROOT.parent / "shared", into / "shared")
    return copy


def run(mutation: Mutation) -> tuple[bool, float, str]:
    """(killed, seconds, what went wrong applying it)."""
    original = (ROOT / mutation.path).read_text()
    if original.count(mutation.old) != 1:
        return False, 0.0, f"the snippet occurs {original.count(mutation.old)} times in {mutation.path}"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skelssl-mutation-") as scratch:
        copy = scratch_copy(Path(scratch))
        (copy / mutation.path).write_text(original.replace(mutation.old, mutation.new))
        env = {**os.environ, "PYTHONPATH": str(copy)}  # the copy's skelssl, also in the tests' subprocesses
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutation.tests],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=1200)
    return done.returncode != 0, time.perf_counter() - started, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[], help="entry names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS + area_entries() if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.path}: {m.why}")
        return
    survived = 0
    for m in chosen:
        killed, seconds, problem = run(m)
        survived += not killed
        state = "killed  " if killed else "SURVIVED"
        print(f"{state} {m.name:40s} {seconds:6.1f} s  {problem or m.why}", flush=True)
    print(f"\nmutations: {len(chosen) - survived} of {len(chosen)} killed")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
