"""The tables of the reproduction, ours beside the paper's (Tables II to V).

Tables II and III come from the rows of :func:`threedgl.experiments.reproduce.reproduce`
(mean ± std over seeds, the paper's number and our difference in brackets); Tables IV and
V from the 3DGL simulation's results (:func:`tables_iv_v`). :func:`summary_tables` gives
the compact versions the terminal prints (under 100 columns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from threedgl.evaluation.utility import METRICS
from threedgl.experiments.paper import TABLE_II, TABLE_III, TABLE_IV, TABLE_V
from threedgl.experiments.reproduce import COMPARED, MAIN, PAPER
from threedgl.federation.paper import TABLE_IV_COLUMNS, TABLE_V_COLUMNS

if TYPE_CHECKING:
    from threedgl.federation.simulation import SimulationResult

__all__ = ["summary_tables", "table_ii", "table_iii", "tables_iv_v"]

METRIC_TITLES: dict[str, str] = {"accuracy": "Accuracy", "f1": "F1", "auc": "AUC"}
COLUMN_TITLES: dict[str, str] = {
    "real": "Real",
    "fold_fold": "Synth(Fold-Fold)",
    "fold_test": "Synth(Fold-Test)",
    "test_test": "Synth(Test-Test)",
}


def _mean_std(df: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean and standard deviation over seeds (NaN with one seed: no spread measured)."""
    values = df[column].astype(float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _cell(mean: float, std: float, ref: float | None, digits: int = 2) -> str:
    ours = f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")
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
                if key is not None and model == "logreg" and name in TABLE_II:
                    ref = TABLE_II[name][key][i]
                row[metric] = _cell(mean, std, ref)
            if source == "Real":
                row["synthetic size"] = ""
            else:
                mix = s["balance"].value_counts().idxmax() if "balance" in s else ""
                row["synthetic size"] = f"{s['synthetic_size'].mean():.0f} ({mix})"
            out.append(row)
    return pd.DataFrame(out)


#: Table III's row of the sampling floor: the real test split against the train split.
FLOOR = "Real test split (floor)"
#: Table III's TVD columns, from the rows of model "marginals".
TVD_COLUMNS: dict[str, str] = {
    "tvd_1way": "tvd 1-way", "tvd_2way": "tvd 2-way", "tvd_3way": "tvd 3-way",
}


def table_iii(results: pd.DataFrame) -> pd.DataFrame:
    """Table III: the discriminator, KLD and TLD, beside the paper (plus HGB AUC, pairwise
    fidelity and, where the run has them, the 1-, 2- and 3-way marginal TVD, with the
    sampling floor as a first row per dataset: the real test split against the train split,
    source ``"Real"`` in the rows)."""
    out = []
    d = results[results["model"] == "discriminator"]
    m = results[results["model"] == "marginals"]
    tvd = [c for c in TVD_COLUMNS if c in m and m[c].notna().any()]
    for name in dict.fromkeys([*d["dataset"], *m["dataset"]]):
        sources = dict.fromkeys([*m[(m["dataset"] == name) & (m["source"] == "Real")]["source"],
                                 *d[d["dataset"] == name]["source"],
                                 *m[m["dataset"] == name]["source"]])
        for source in sources:
            s = d[(d["dataset"] == name) & (d["source"] == source)]
            row: dict[str, Any] = {"dataset": name,
                                   "source": FLOOR if source == "Real" else source}
            ref = TABLE_III.get(name) if source in COMPARED else None
            for i, (col, label) in enumerate((("disc_accuracy", "accuracy"), ("disc_f1", "f1"),
                                              ("disc_auc", "auc"), ("kld", "kld"), ("tld", "tld"))):
                digits = 3 if col in ("kld", "tld") else 2
                row[label] = _cell_of(s, col, ref[i] if ref else None, digits)
            row["hgb disc. auc"] = _cell_of(s, "disc_hgb_auc", None)
            row["pairwise Δ"] = _cell_of(s, "pairwise_fidelity", None, 3)
            t = m[(m["dataset"] == name) & (m["source"] == source)]
            for col in tvd:
                row[TVD_COLUMNS[col]] = _cell_of(t, col, None, 3)
            out.append(row)
    return pd.DataFrame(out)


def _cell_of(rows: pd.DataFrame, column: str, ref: float | None, digits: int = 2) -> str:
    """``mean ± std`` of a column over seeds (:func:`_cell`), empty without a value."""
    if column not in rows or rows[column].isna().all():
        return ""
    mean, std = _mean_std(rows.dropna(subset=[column]), column)
    return _cell(mean, std, ref, digits)


def _table(
    results_by_dataset: Mapping[str, SimulationResult],
    paper: Mapping[str, Mapping[str, tuple[float, float, float]]],
    columns: Mapping[str, str],
) -> pd.DataFrame:
    names = list(results_by_dataset)  # the datasets run: the paper's others are not rows
    rows: list[dict[str, Any]] = []
    spread: list[dict[str, Any]] = []  # each "ours" cell's standard deviation over seeds
    for name in names:
        row: dict[str, Any] = {"dataset": name}
        std_row: dict[str, Any] = {"dataset": name}
        ours = results_by_dataset[name].summary() if name in results_by_dataset else None
        seeds = (int(results_by_dataset[name].to_frame()["seed"].nunique())
                 if name in results_by_dataset else 0)
        for m_i, metric in enumerate(METRICS):
            for col, scenario in columns.items():
                title = f"{METRIC_TITLES[metric]} {COLUMN_TITLES[col]}"
                ref = paper.get(name, {}).get(col)
                row[f"{title} paper"] = ref[m_i] if ref is not None else float("nan")
                row[f"{title} ours"] = (
                    _float(ours.loc[scenario, metric]) if ours is not None else float("nan")
                )
                std_row[f"{title} ours"] = (
                    _sample_std(ours.loc[scenario, f"{metric}_std"], seeds) if ours is not None
                    else float("nan"))
        rows.append(row)
        spread.append(std_row)
    table = pd.DataFrame(rows)
    # The paper's last row: mean gain of each synthetic column over Real, over the datasets
    # of the table for both sides (the paper's mean over the same datasets, not its five).
    gain: dict[str, Any] = {"dataset": "mean gain vs Real"}
    for metric in METRICS:
        for col in columns:
            title = f"{METRIC_TITLES[metric]} {COLUMN_TITLES[col]}"
            for who in ("paper", "ours"):
                if col == "real":
                    gain[f"{title} {who}"] = float("nan")
                    continue
                real = table[f"{METRIC_TITLES[metric]} {COLUMN_TITLES['real']} {who}"]
                gain[f"{title} {who}"] = float((table[f"{title} {who}"] - real).mean())
    out = pd.concat([table, pd.DataFrame([gain])], ignore_index=True)
    # The spread over seeds beside the means (written as <table>_std.csv): what a change
    # of the code may move a cell by. The gain row's: the root mean square of its column's
    # (a rough tolerance: the gain's own noise is that of a difference averaged over rows).
    # (Records, not a frame: pandas compares attrs when it concatenates.)
    std = pd.DataFrame(spread)
    rms = {c: float(np.sqrt(np.nanmean(std[c].astype(float) ** 2)))
           if std[c].notna().any() else float("nan") for c in std.columns if c != "dataset"}
    out.attrs["std"] = [*spread, {"dataset": gain["dataset"], **rms}]
    return out


def tables_iv_v(
    results_by_dataset: Mapping[str, SimulationResult],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables IV and V: for every dataset run and every metric and column, the paper's
    number beside ours (``"<Metric> <Column> paper"`` and ``"... ours"``, in %; NaN where
    the paper has no number). The last row holds the mean gain over Real, over the same
    datasets on both sides, like the paper's last row.
    """
    return (
        _table(results_by_dataset, TABLE_IV, TABLE_IV_COLUMNS),
        _table(results_by_dataset, TABLE_V, TABLE_V_COLUMNS),
    )


# -- the terminal's summary (fits 100 columns) -----------------------------------------------
SHORT_SOURCES: dict[str, str] = {
    "Real": "Real",
    MAIN: "DDP-βVAE",
    PAPER: "paper mode",
    "DP marginals (ε=1.9)": "DP marg.",
    "βVAE, no DP (ε=∞)": "no DP",
}


def _ms(values: pd.Series, digits: int = 1) -> str:
    v = values.astype(float)
    if len(v) == 0 or v.isna().all():
        return ""
    if len(v) == 1:
        return f"{float(v.iloc[0]):.{digits}f}"
    return f"{float(v.mean()):.{digits}f}±{float(v.std(ddof=1)):.{digits}f}"


def _mean(values: pd.Series) -> str:
    v = values.astype(float)
    return "" if v.isna().all() else f"{float(v.mean()):.3f}"


def summary_tables(
    results: pd.DataFrame, extra: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """Compact tables for the terminal: Table II's logistic-regression accuracy per source
    (the paper's Synth beside), Table III's discriminator AUC and 2- and 3-way marginal TVD
    (the sampling floor beside), Tables IV and V's mean gains
    and the privacy table's largest attack AUC per ε. Every cell is short."""
    out: dict[str, pd.DataFrame] = {}
    if len(results):
        d = results[results["model"] == "logreg"]
        rows = []
        for name in dict.fromkeys(d["dataset"]):
            row: dict[str, Any] = {"dataset": name}
            for source in dict.fromkeys(d["source"]):
                row[SHORT_SOURCES.get(source, source)] = _ms(
                    d[(d["dataset"] == name) & (d["source"] == source)]["accuracy"])
            row["paper Synth"] = (f"{TABLE_II[name]['synth'][0]:.1f}" if name in TABLE_II
                                  else "")
            rows.append(row)
        out["Table II: accuracy (%), logistic regression on the test split"] = pd.DataFrame(rows)
        disc = results[results["model"] == "discriminator"]
        if len(disc):
            rows = []
            for name in dict.fromkeys(disc["dataset"]):
                row = {"dataset": name}
                for source in dict.fromkeys(disc["source"]):
                    s = disc[(disc["dataset"] == name) & (disc["source"] == source)]
                    row[SHORT_SOURCES.get(source, source)] = _ms(s["disc_auc"])
                row["paper"] = f"{TABLE_III[name][2]:.1f}" if name in TABLE_III else ""
                rows.append(row)
            out["Table III: discriminator AUC (%), 50 = indistinguishable"] = pd.DataFrame(rows)
        marg = results[results["model"] == "marginals"]
        if len(marg) and {"tvd_2way", "tvd_3way"} <= set(marg.columns):
            rows = []
            for name in dict.fromkeys(marg["dataset"]):
                row = {"dataset": name}
                for source in dict.fromkeys(marg["source"]):
                    s = marg[(marg["dataset"] == name) & (marg["source"] == source)]
                    cell = "/".join(_mean(s[c]) for c in ("tvd_2way", "tvd_3way"))
                    key = "floor" if source == "Real" else SHORT_SOURCES.get(source, source)
                    row[key] = "" if cell == "/" else cell
                rows.append(row)
            out["Table III: 2-way/3-way marginal TVD (lower is better; floor = test vs "
                "train)"] = pd.DataFrame(rows)
    for key, title in (("table_v", "Table V, our DDP-βVAE"),
                       ("table_v_paper", "Table V, paper mode")):
        table = (extra or {}).get(key)
        if table is None or not len(table):
            continue
        rows = []
        for _, r in table.iterrows():
            rows.append({
                "dataset": r["dataset"],
                "acc local": _num(r["Accuracy Real ours"]),
                "acc Fold-Test": _num(r["Accuracy Synth(Fold-Test) ours"]),
                "(paper)": _num(r["Accuracy Synth(Fold-Test) paper"]),
                "F1 local": _num(r["F1 Real ours"]),
                "F1 Fold-Test": _num(r["F1 Synth(Fold-Test) ours"]),
                "(paper) ": _num(r["F1 Synth(Fold-Test) paper"]),
            })
        out[f"{title}: 10 clients, pool rows scored on the test set (%)"] = pd.DataFrame(rows)
    privacy = (extra or {}).get("privacy")
    if privacy is not None and len(privacy):
        g = privacy.groupby(["dataset", "mode", "setting", "epsilon"], sort=False)["auc"].max()
        wide = g.unstack("epsilon")
        wide.columns = [f"ε={c:g}" for c in wide.columns]
        wide = wide.reset_index()
        for c in wide.columns[3:]:
            wide[c] = wide[c].map(lambda v: f"{v:.2f}")
        out["Privacy: best attack AUC (0.5 = guessing)"] = wide
    audit = (extra or {}).get("audit")
    if audit is not None and len(audit):
        shown = audit[["dataset", "mode", "epsilon_claimed", "epsilon_lower_bound"]].copy()
        shown.columns = ["dataset", "mode", "claimed ε", "ε lower bound (95 %)"]
        for c in shown.columns[2:]:
            shown[c] = shown[c].map(lambda v: f"{float(v):.2f}")
        out["Privacy audit: the ε an attacker proves (one run)"] = shown
    return out


def _sample_std(population_std: Any, seeds: int) -> float:
    """The standard deviation over seeds with ddof = 1 (as Tables II and III print it) from
    the summary's population one; NaN with one seed (no spread measured)."""
    if seeds < 2:
        return float("nan")
    return _float(population_std) * math.sqrt(seeds / (seeds - 1))


def _float(value: Any) -> float:
    return float(value)


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if math.isnan(f) else f"{f:.1f}"
