"""``3dgl reproduce``: the paper's Tables II and III on the bundled datasets.

For each dataset and seed (SPEC §4, §7): a stratified 90/10 split; the Real baseline
(logistic regression on the train split, scored on test); DDP-βVAE with the Table I
preset at ε = 1.9, δ = 1e-4 in two modes (ours, the default: sampled bins, DP marginal
anchor, noisy class sizes, chosen settings; and the paper's, Table I), the DP
independent-marginals baseline at the same (ε, δ), and our DDP-βVAE without DP (ε = ∞),
each trained on the train split. For each generator: one
large balanced synthetic table, the size sweep selected on the real *train* split
(accuracy, logistic regression), then the test scores of logistic regression and
histogram gradient boosting trained on the selected prefix. Table III: a synthetic table
with as many rows as the train split (following the released class sizes), the
real-vs-synthetic discriminators (10-fold CV), KLD, TLD and pairwise fidelity. The test
split is read only for the final scores.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from threedgl.errors import ThreedglError
from threedgl.evaluation import paper
from threedgl.evaluation.discriminator import discriminator_scores
from threedgl.evaluation.divergence import feature_kld, tld
from threedgl.evaluation.fidelity import pairwise_fidelity
from threedgl.evaluation.sweep import SweepResult, interleave_classes, size_sweep
from threedgl.evaluation.utility import utility_scores

#: Generators compared in every table: name → (kind, ε, mode). "DDP-βVAE" is our default
#: (anchored) model with its chosen settings; "paper" is the paper's model with Table I.
GENERATORS: dict[str, tuple[str, float, str]] = {
    "DDP-βVAE (ε=1.9)": ("ddp-betavae", 1.9, "anchored"),
    "DDP-βVAE paper (ε=1.9)": ("ddp-betavae", 1.9, "paper"),
    "DP marginals (ε=1.9)": ("dp-marginals", 1.9, ""),
    "βVAE, no DP (ε=∞)": ("ddp-betavae", math.inf, "anchored"),
}
MAIN = "DDP-βVAE (ε=1.9)"
PAPER = "DDP-βVAE paper (ε=1.9)"
#: Rows shown beside the paper's DDP-βVAE numbers.
COMPARED = (MAIN, PAPER)

Progress = Callable[[str], None]


@dataclass
class ReproduceConfig:
    datasets: Sequence[str]
    seeds: int = 5
    quick: bool = False
    epochs: int | None = None
    max_synthetic: int = 40_000
    generators: Sequence[str] = tuple(GENERATORS)
    overrides: dict[str, Any] = field(default_factory=dict)
    table_iii: bool = True
    #: Class mix of the synthetic table: "balanced" (the paper), "released" or "select".
    balance: str = "select"
    #: Cap on train rows (stratified subsample of the train split; the test split is whole).
    max_train_rows: int | None = None

    def __post_init__(self) -> None:
        if self.quick and self.max_train_rows is None:
            self.max_train_rows = 5000


@dataclass
class ReproduceResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    sweeps: dict[str, dict[str, SweepResult]] = field(default_factory=dict)
    marginals: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    seconds: float = 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def split(frame: pd.DataFrame, target: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's stratified 90/10 split."""
    train, test = train_test_split(frame, test_size=0.1, stratify=frame[target], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _make_generator(kind: str, epsilon: float, mode: str, dataset: str, seed: int,
                    epochs: int | None, overrides: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    from threedgl.model.ddp_betavae import DDPBetaVAE
    from threedgl.model.marginals import DPMarginals

    if kind == "dp-marginals":
        return DPMarginals(epsilon=epsilon, random_state=seed)
    params: dict[str, Any] = {"epsilon": epsilon, "random_state": seed, **(overrides or {})}
    if epochs is not None:
        params["epochs"] = epochs
    if mode == "paper":
        return DDPBetaVAE.from_preset(dataset, **params)
    params.pop("categorical", None)  # a paper-mode option
    return DDPBetaVAE(**params)


def run_dataset(
    name: str,
    seed: int,
    config: ReproduceConfig,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], dict[str, SweepResult], tuple[pd.DataFrame, pd.DataFrame]]:
    """Every row of Tables II and III for one dataset and one seed.

    Also returns the sweep curves and (real train, DDP-βVAE sample) for the plots.
    """
    from threedgl import datasets

    ds = datasets.load(name)
    train, test = split(ds.frame, ds.target, seed)
    if config.max_train_rows is not None and len(train) > config.max_train_rows:
        train, _ = train_test_split(train, train_size=config.max_train_rows,
                                    stratify=train[ds.target], random_state=seed)
        train = train.reset_index(drop=True)
    pos = ds.positive_label
    rows: list[dict[str, Any]] = []
    sweeps: dict[str, SweepResult] = {}
    pair = (train, train.iloc[:0])
    base = {"dataset": name, "seed": seed}
    for model in ("logreg", "hgb"):
        real = utility_scores(train, test, ds.schema, model=model, positive_label=pos, random_state=seed)
        rows.append({**base, "source": "Real", "model": model, **_scores(real),
                     "majority_accuracy": 100 * real["majority_accuracy"]})
    for gen_name in config.generators:
        kind, eps, mode = GENERATORS[gen_name]
        if progress:
            progress(f"{name} seed {seed}: training {gen_name}")
        t0 = time.perf_counter()
        gen = _make_generator(kind, eps, mode, name, seed, config.epochs, config.overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            gen.fit(train, target=ds.target, schema=ds.schema)
        fit_seconds = time.perf_counter() - t0
        if progress:
            progress(f"{name} seed {seed}: size sweep for {gen_name}")
        synthetic, sweep, balance = select_synthetic(gen, train, ds.schema, pos, seed, config)
        chosen = sweep.best_prefix(synthetic)
        # For the plot only (never for selection): the test score of each prefix tried.
        test_curve = [utility_scores(synthetic.iloc[:size], test, ds.schema, positive_label=pos,
                                     random_state=seed)["accuracy"] for size in sweep.sizes]
        sweeps[gen_name] = SweepResult(sweep.sizes, tuple(test_curve), sweep.best_size,
                                       test_curve[sweep.sizes.index(sweep.best_size)], "test accuracy")
        for model in ("logreg", "hgb"):
            scores = utility_scores(chosen, test, ds.schema, model=model, positive_label=pos,
                                    random_state=seed)
            rows.append({**base, "source": gen_name, "model": model, **_scores(scores),
                         "synthetic_size": sweep.best_size, "balance": balance,
                         "fit_seconds": fit_seconds,
                         "epsilon_reached": gen.epsilon_})
        if not config.table_iii:
            continue
        # Table III: as many synthetic rows as real train rows.
        same_size = gen.sample(len(train), balanced=False, random_state=seed + 2)
        if gen_name == MAIN:
            pair = (train, same_size)
        disc = {"logreg": discriminator_scores(train, same_size, ds.schema, random_state=seed)}
        # The extra gradient-boosting discriminator on at most 10,000 rows a side, 5 folds.
        cap = min(len(train), 10_000)
        disc["hgb"] = discriminator_scores(train.sample(cap, random_state=seed),
                                           same_size.sample(cap, random_state=seed), ds.schema,
                                           model="hgb", folds=5, random_state=seed)
        per_feature = feature_kld(train, same_size, ds.schema)
        kld = float(np.mean(list(per_feature.values())))
        lr = disc["logreg"]
        rows.append({
            **base, "source": gen_name, "model": "discriminator",
            "disc_accuracy": 100 * lr["accuracy"], "disc_f1": 100 * lr["f1"], "disc_auc": 100 * lr["auc"],
            "disc_hgb_auc": 100 * disc["hgb"]["auc"], "kld": kld,
            "tld": tld(kld, max(lr["accuracy"], 1e-12), float(np.clip(lr["auc"], 0, 1))),
            "pairwise_fidelity": pairwise_fidelity(train, same_size, ds.schema),
        })
        if progress:
            progress(f"{name} seed {seed}: {gen_name} done ({fit_seconds:.0f} s training)")
    return rows, sweeps, pair


def select_synthetic(
    gen: Any, train: pd.DataFrame, schema: Any, pos: Any, seed: int, config: ReproduceConfig
) -> tuple[pd.DataFrame, SweepResult, str]:
    """Sample once, sweep the size on the real train split; return the table and its sweep.

    ``config.balance`` is ``"balanced"`` (the paper: equal rows per class), ``"released"``
    (the class sizes the generator releases) or ``"select"``: both are swept and the one
    with the better score *on the train split* is kept (never the test split).
    """
    n_pool = int(min(config.max_synthetic, max(4 * len(train), 4000)))
    choices = ["balanced", "released"] if config.balance == "select" else [config.balance]
    best: tuple[pd.DataFrame, SweepResult, str] | None = None
    for choice in choices:
        table = gen.sample(n_pool, balanced=choice == "balanced", random_state=seed + 1)
        table = interleave_classes(table, schema, random_state=seed)
        sweep = size_sweep(table, train, schema, metric="accuracy", positive_label=pos,
                           random_state=seed)
        if best is None or sweep.best_score > best[1].best_score:
            best = (table, sweep, choice)
    assert best is not None
    return best


def _scores(s: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": 100 * s["accuracy"], "f1": 100 * s["f1"], "auc": 100 * s["auc"]}


def reproduce(config: ReproduceConfig, progress: Progress | None = None) -> ReproduceResult:
    from threedgl import datasets

    unknown = [d for d in config.datasets if d not in datasets.NAMES]
    if unknown:
        raise ThreedglError(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(datasets.NAMES)}")
    if config.seeds < 1:
        raise ThreedglError(f"--seeds must be at least 1, got {config.seeds}")
    result = ReproduceResult()
    start = time.perf_counter()
    for name in config.datasets:
        for seed in range(config.seeds):
            rows, sweeps, pair = run_dataset(name, seed, config, progress)
            result.rows.extend(rows)
            if seed == 0:
                result.sweeps[name] = sweeps
                result.marginals[name] = pair
    result.seconds = time.perf_counter() - start
    return result


def _mean_std(df: pd.DataFrame, column: str) -> tuple[float, float]:
    values = df[column].astype(float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _cell(mean: float, std: float, ref: float | None, digits: int = 2) -> str:
    ours = f"{mean:.{digits}f} ± {std:.{digits}f}"
    if ref is None:
        return ours
    return f"{ours} (paper {ref:.2f}, Δ {mean - ref:+.2f})"


def table_ii(results: pd.DataFrame, model: str = "logreg") -> pd.DataFrame:
    """Table II: ours (mean ± std over seeds) beside the paper's number and the difference."""
    out = []
    for name in dict.fromkeys(results["dataset"]):
        d = results[(results["dataset"] == name) & (results["model"] == model)]
        for source in dict.fromkeys(d["source"]):
            s = d[d["source"] == source]
            row: dict[str, Any] = {"dataset": name, "source": source}
            key = "real" if source == "Real" else ("synth" if source in COMPARED else None)
            for i, metric in enumerate(("accuracy", "f1", "auc")):
                mean, std = _mean_std(s, metric)
                ref = None
                if key is not None and model == "logreg" and name in paper.TABLE_II:
                    ref = paper.TABLE_II[name][key][i]
                row[metric] = _cell(mean, std, ref)
            if source == "Real":
                row["synthetic size"] = ""
            else:
                mix = s["balance"].value_counts().idxmax() if "balance" in s else ""
                row["synthetic size"] = f"{s['synthetic_size'].mean():.0f} ({mix})"
            out.append(row)
    return pd.DataFrame(out)


def table_iii(results: pd.DataFrame) -> pd.DataFrame:
    """Table III: the discriminator, KLD and TLD, beside the paper (plus HGB AUC, fidelity)."""
    out = []
    d = results[results["model"] == "discriminator"]
    for name in dict.fromkeys(d["dataset"]):
        for source in dict.fromkeys(d[d["dataset"] == name]["source"]):
            s = d[(d["dataset"] == name) & (d["source"] == source)]
            row: dict[str, Any] = {"dataset": name, "source": source}
            ref = paper.TABLE_III.get(name) if source in COMPARED else None
            for i, (col, label) in enumerate((("disc_accuracy", "accuracy"), ("disc_f1", "f1"),
                                              ("disc_auc", "auc"), ("kld", "kld"), ("tld", "tld"))):
                mean, std = _mean_std(s, col)
                digits = 3 if col in ("kld", "tld") else 2
                row[label] = _cell(mean, std, ref[i] if ref else None, digits)
            mean, std = _mean_std(s, "disc_hgb_auc")
            row["hgb disc. auc"] = _cell(mean, std, None)
            mean, std = _mean_std(s, "pairwise_fidelity")
            row["pairwise Δ"] = _cell(mean, std, None, 3)
            out.append(row)
    return pd.DataFrame(out)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_text(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.2f}"
    return str(value)


def write_outputs(result: ReproduceResult, out: Path, extra_tables: dict[str, pd.DataFrame] | None = None) -> list[Path]:
    """Markdown, CSV, JSON and PNG plots into ``out``."""
    from threedgl.evaluation.plotting import plot_sweep
    from threedgl.schema.io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    frame = result.frame()
    written: list[Path] = []
    tables: dict[str, pd.DataFrame] = {}
    if len(frame):
        tables = {"table_ii": table_ii(frame), "table_ii_hgb": table_ii(frame, model="hgb"),
                  "table_iii": table_iii(frame)}
    tables.update(extra_tables or {})
    md = ["# threedgl reproduction\n"]
    for key, table in tables.items():
        md.append(f"## {key}\n\n{to_markdown(table)}\n")
        path = out / f"{key}.csv"
        atomic_write_text(path, table.to_csv(index=False))
        written.append(path)
    atomic_write_text(out / "tables.md", "\n".join(md))
    atomic_write_text(out / "results.csv", frame.to_csv(index=False))
    atomic_write_text(out / "results.json", json.dumps(
        {"rows": frame.to_dict(orient="records"),
         "sweeps": {d: {g: s.to_dict() for g, s in sw.items()} for d, sw in result.sweeps.items()}},
        indent=2, default=float))
    written += [out / "tables.md", out / "results.csv", out / "results.json"]
    from threedgl import datasets
    from threedgl.evaluation.plotting import plot_marginals

    for name, sweeps in result.sweeps.items():
        path = out / f"sweep-{name}.png"
        plot_sweep(sweeps, path, title=f"{name}: test accuracy vs synthetic size (selected on train)")
        written.append(path)
    for name, (real, synth) in result.marginals.items():
        schema = datasets.load(name).schema
        path = out / f"marginals-{name}.png"
        plot_marginals(real, synth, schema, [c.name for c in schema.features][:4], path)
        written.append(path)
    return written
