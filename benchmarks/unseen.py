"""Defaults on tables nobody tuned for: DDP-βVAE() with no preset against DP marginals.

The default settings of DDP-βVAE were chosen on the bundled datasets' train splits only.
This benchmark runs them, untouched, on public tables that played no part in that choice
(shipped inside statsmodels, so nothing is downloaded at run time):

* ``anes96``: 944 respondents of the 1996 American National Election Study, 10 mixed
  columns; the class is the vote (Clinton 0 / Dole 1);
* ``fair``: 6,366 women of the 1974 Redbook survey, 8 columns; the class is whether any
  extramarital affair was reported (the count itself is dropped).

For each table and seed: a stratified 90/10 split, the schema inferred from the whole table
(as a user without a declared schema does: not private, and the same for every generator),
DDP-βVAE at ε = 1.9 with its defaults, DP marginals at the same (ε, δ), and the non-private
β-VAE; as many synthetic rows as train rows, with the released class mix; logistic
regression and gradient boosting trained on them and scored on the test split, beside the
majority class and real data; and the k-way marginal TVD of the synthetic rows against the
train split (``threedgl.evaluation.kway_tvd``; for Real, the test split: the floor).

    pip install -e '.[bench]' && python benchmarks/unseen.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import pandas as pd
from sklearn.model_selection import train_test_split

from threedgl import DDPBetaVAE, DPMarginals, infer_schema
from threedgl.evaluation import kway_tvd
from threedgl.evaluation.utility import utility_scores


def tables() -> dict[str, tuple[pd.DataFrame, str, str]]:
    """name → (frame, class column, positive label)."""
    import statsmodels.api as sm

    anes = sm.datasets.anes96.load_pandas().data.drop(columns=["logpopul"])
    anes["vote"] = anes["vote"].astype(int).map({0: "clinton", 1: "dole"})
    for col in ("TVnews", "selfLR", "ClinLR", "DoleLR", "PID", "age", "educ", "income"):
        anes[col] = anes[col].astype(int)
    fair = sm.datasets.fair.load_pandas().data
    fair["affair"] = (fair.pop("affairs") > 0).map({False: "no", True: "yes"})
    for col in ("rate_marriage", "age", "children", "religious", "educ", "occupation",
                "occupation_husb"):
        fair[col] = fair[col].round().astype(int)
    return {"anes96": (anes, "vote", "dole"), "fair": (fair, "affair", "yes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    start = time.perf_counter()
    makers = {
        "DDP-βVAE (ε=1.9)": lambda s: DDPBetaVAE(random_state=s),
        "DP marginals (ε=1.9)": lambda s: DPMarginals(random_state=s),
        "βVAE, no DP (ε=∞)": lambda s: DDPBetaVAE(epsilon=math.inf, random_state=s),
    }
    for name, (frame, target, pos) in tables().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = infer_schema(frame, target=target)
        for seed in range(args.seeds):
            train, test = train_test_split(frame, test_size=0.1, stratify=frame[target],
                                           random_state=seed)
            sources = {"Real": train}
            for label, make in makers.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gen = make(seed).fit(train, target=target, schema=schema)
                sources[label] = gen.sample(len(train), balanced=False, random_state=seed)
            for label, table in sources.items():
                tvd = kway_tvd(train, test if label == "Real" else table, schema)
                for model in ("logreg", "hgb"):
                    s = utility_scores(table, test, schema, model=model, positive_label=pos,
                                       random_state=seed)
                    rows.append({"table": name, "seed": seed, "source": label, "model": model,
                                 "accuracy": 100 * s["accuracy"], "f1": 100 * s["f1"],
                                 "auc": 100 * s["auc"],
                                 "majority": 100 * s["majority_accuracy"], **tvd})
    df = pd.DataFrame(rows)
    lines = ["| table | source | LR accuracy | LR AUC | HGB accuracy | HGB AUC | majority | "
             "TVD 1-way | TVD 2-way | TVD 3-way |", "|---" * 10 + "|"]
    for (name, source), d in df.groupby(["table", "source"], sort=False):
        lr, hgb = d[d.model == "logreg"], d[d.model == "hgb"]
        lines.append(
            f"| {name} | {source} | {lr.accuracy.mean():.2f} ± {lr.accuracy.std():.2f} | "
            f"{lr.auc.mean():.2f} | {hgb.accuracy.mean():.2f} ± {hgb.accuracy.std():.2f} | "
            f"{hgb.auc.mean():.2f} | {d.majority.mean():.2f} | "
            + " | ".join(f"{lr[k].mean():.3f} ± {lr[k].std():.3f}"
                         for k in ("tvd_1way", "tvd_2way", "tvd_3way")) + " |"
        )
    print("\n".join(lines))
    print(f"\n{args.seeds} seeds, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
