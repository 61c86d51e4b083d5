"""Issue 24, the deterministic linear probe (skelssl.evaluation.logistic)."""

TESTS = "tests/evaluation/test_logistic_probe.py::"
LOGISTIC = "skelssl/evaluation/logistic.py"
ENTRIES = [
    dict(name="logistic-binary-penalty-not-doubled", path=LOGISTIC,
         old="        model.set_params(C=(2.0 if binary else 1.0) / (float(l2) * len(y)))\n",
         new="        model.set_params(C=1.0 / (float(l2) * len(y)))\n",
         tests=(TESTS + "test_fit_is_the_minimiser_of_mean_cross_entropy_plus_half_l2",),
         why="with two classes scikit-learn's one-row penalty is twice the multinomial one: another λ than stated"),
    dict(name="logistic-not-standardised", path=LOGISTIC,
         old="            model.fit(z, y)\n", new="            model.fit(x, y)\n",
         tests=(TESTS + "test_fit_is_the_minimiser_of_mean_cross_entropy_plus_half_l2",),
         why="the probe fitted on raw features but applied to z-scored ones"),
    dict(name="logistic-ties-to-weaker-penalty", path=LOGISTIC,
         old="    return max(l2 for l2, score in scores.items() if score == best), scores\n",
         new="    return min(l2 for l2, score in scores.items() if score == best), scores\n",
         tests=(TESTS + "test_l2_is_chosen_on_the_train_part_alone_and_ties_go_to_the_stronger_penalty",),
         why="a tie between λ values went to the weaker penalty (the documented rule is the stronger)"),
    dict(name="logistic-l2-from-the-test-part", path=LOGISTIC,
         old="    l2, cv = choose_l2(train_features, train_labels, tuple(cfg.l2), cfg.folds, cfg.seed, cfg.max_iter,\n",
         new="    l2, cv = choose_l2(test_features, test_labels, tuple(cfg.l2), cfg.folds, cfg.seed, cfg.max_iter,\n",
         tests=(TESTS + "test_l2_is_chosen_on_the_train_part_alone_and_ties_go_to_the_stronger_penalty",),
         why="λ chosen by cross-validation on the test part (test labels leak into the probe)"),
]

ENTRIES += [
    dict(name="spread-sd-population", path="skelssl/evaluation/spread.py",
         old="        sd = float(array.std(ddof=1)) if len(array) > 1 else 0.0\n",
         new="        sd = float(array.std()) if len(array) > 1 else 0.0\n",
         tests=("tests/evaluation/test_seed_spreads.py::test_mean_and_sample_deviation_per_cell_and_the_marks",),
         why="the spread as the population deviation: too small for 2-3 seeds, differences marked too easily"),
    dict(name="report-seeds-without-reference", path="skelssl/evaluation/spread.py",
         old='    has_random = any(s.model == "random_init" for s in summaries)\n', new="    has_random = False\n",
         tests=("tests/evaluation/test_seed_spreads.py::test_report_seeds_pools_runs_and_marks_against_random_init",),
         why="report --seeds printed the cells without marking them against random_init"),
]
