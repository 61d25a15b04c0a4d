"""How DDP-βVAE's default settings were chosen: variants of the rule on the train splits only.

For each bundled dataset and seed: the paper's stratified 90/10 split, whose *test* part is
never read here; the train part is cut again into 80% to fit and 20% to score. Each variant
of :func:`threedgl.model.anchored.auto_settings` (and of the anchor's budget share) trains
DDP-βVAE at ε = 1.9 on the fit rows; logistic regression and gradient boosting are trained
on as many synthetic rows (at least 2,000, the released class mix) and scored on the held
20%, beside DP marginals at the same ε and the fit rows themselves. Results recorded in
``benchmarks/defaults.md``.

    python benchmarks/defaults.py [--datasets titanic,breast-cancer] [--seeds 3] [--variants chosen,lr1e-2]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

import threedgl.model.anchored as anchored
from threedgl import DDPBetaVAE, DPMarginals, datasets
from threedgl.evaluation.utility import utility_scores
from threedgl.experiments.reproduce import split


def make_rule(*, bins_per=30, bins_max=64, batch_per=8, batch_max=512, epochs_num=1000, epochs_lo=8,
              epochs_hi=40, max_steps=1000, max_row_passes=300_000, lr=5e-3, beta=0.5
              ) -> Callable[..., dict[str, Any]]:
    """The rule of :func:`auto_settings` with its constants as parameters."""

    def rule(n_features: int, widths: Sequence[int] | None, noisy_rows: Sequence[float],
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        fixed = dict(overrides or {})
        n_min = max(1.0, min(noisy_rows))
        n_max = max(n_min, max(noisy_rows))
        out: dict[str, Any] = {"bins": int(np.clip(n_min // bins_per, 4, bins_max))}
        if widths is None:  # integer columns with up to 2 x bins values: one bin per value
            out.update(fixed)
            return {**out, "levels": max(20, 2 * int(out["bins"]))}
        h1 = 128 if sum(widths) > 96 else 64
        batch = int(np.clip(2 ** round(math.log2(max(n_min / batch_per, 1))), 16, batch_max))
        out.update(hidden=(h1, h1 // 2), latent=int(np.clip(n_features // 2, 3, 8)), beta=beta,
                   batch_size=batch, learning_rate=lr)
        out.update(fixed)
        if "epochs" not in fixed:
            epochs = int(np.clip(round(epochs_num / math.sqrt(n_min)), epochs_lo, epochs_hi))
            epochs = min(epochs, int(max_steps * out["batch_size"] / n_max),
                         int(max_row_passes / sum(noisy_rows)))
            out["epochs"] = max(1, epochs)
        return out

    return rule


#: name → (rule, marginals_share). "chosen" is the library's default.
VARIANTS: dict[str, tuple[Callable[..., dict[str, Any]], float]] = {
    "chosen": (make_rule(), 0.35),
    "anchor 20%": (make_rule(), 0.2),
    "anchor 50%": (make_rule(), 0.5),
    "lr 1e-2": (make_rule(lr=1e-2), 0.35),
    "lr 7e-3": (make_rule(lr=7e-3), 0.35),
    "fewer epochs": (make_rule(epochs_num=600, epochs_lo=5, epochs_hi=30, max_steps=800), 0.35),
    "beta 0.2": (make_rule(beta=0.2), 0.35),
    "bins n/60": (make_rule(bins_per=60), 0.35),
}


def check_chosen_is_the_library() -> None:
    rule = VARIANTS["chosen"][0]
    for rows in ([45.0, 73.0], [190.0, 322.0], [1100.0, 3000.0], [8100.0, 24400.0],
                 [10100.0, 30600.0]):
        for widths in (None, [3, 2, 16, 9, 10, 16, 3], [20] * 11):
            for fixed in ({}, {"batch_size": 16}, {"epochs": 3, "hidden": (8, 4)}):
                assert rule(7, widths, rows, fixed) == anchored.auto_settings(7, widths, rows, fixed)


def run(name: str, seed: int, variants: list[str]) -> list[dict[str, Any]]:
    ds = datasets.load(name)
    train, _ = split(ds.frame, ds.target, seed)  # the test split is not used here
    fit, valid = train_test_split(train, test_size=0.2, stratify=train[ds.target],
                                  random_state=seed)
    fit, valid = fit.reset_index(drop=True), valid.reset_index(drop=True)
    n = max(len(fit), 2000)
    out = []

    def score(source: str, table: pd.DataFrame, seconds: float = 0.0) -> None:
        row: dict[str, Any] = {"dataset": name, "seed": seed, "source": source,
                               "fit_seconds": seconds}
        for model in ("logreg", "hgb"):
            s = utility_scores(table, valid, ds.schema, model=model,
                               positive_label=ds.positive_label, random_state=seed)
            row[f"{model}_accuracy"] = 100 * s["accuracy"]
            row[f"{model}_f1"] = 100 * s["f1"]
        out.append(row)

    score("real (fit rows)", fit)
    gen: Any = DPMarginals(random_state=seed).fit(fit, target=ds.target, schema=ds.schema)
    score("DP marginals", gen.sample(n, balanced=False, random_state=seed))
    original = anchored.auto_settings
    try:
        for variant in variants:
            rule, share = VARIANTS[variant]
            anchored.auto_settings = rule
            t0 = time.perf_counter()
            gen = DDPBetaVAE(random_state=seed, marginals_share=share).fit(
                fit, target=ds.target, schema=ds.schema)
            score(variant, gen.sample(n, balanced=False, random_state=seed),
                  time.perf_counter() - t0)
    finally:
        anchored.auto_settings = original
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    check_chosen_is_the_library()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.datasets.split(","):
            for seed in range(args.seeds):
                rows += run(name, seed, args.variants.split(","))
    df = pd.DataFrame(rows)
    table = df.groupby(["dataset", "source"], sort=False).mean(numeric_only=True)
    print(table.drop(columns="seed").round(1).to_string())


if __name__ == "__main__":
    main()
