"""The report of a 3DGL simulation: :class:`SimulationResult` (frames, Markdown, JSON, plot).

It reads records, whatever engine produced them; published numbers to compare with (the
paper's Tables IV and V) are passed in as :class:`Reference` — this module imports no
experiment.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from threedgl.federation.scenarios import (
    BASELINE_OF,
    METRICS,
    SCENARIO_TITLES,
    SCENARIOS,
    _nanmean,
)
from threedgl.markdown import markdown_table


@dataclass(frozen=True)
class Reference:
    """Published scores to show beside ours: ``scores[column] = (accuracy, f1, auc)`` in %,
    ``columns[column]`` = the scenario of ours it corresponds to; ``table`` names it."""

    table: str
    scores: Mapping[str, tuple[float, float, float]]
    columns: Mapping[str, str]


# -- results ------------------------------------------------------------------------------------------
@dataclass
class SimulationResult:
    """Per-client scores of every scenario, for every seed (scores in % in the frames)."""

    dataset: str
    config: dict[str, Any]
    records: list[dict[str, Any]]
    elapsed_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: Participants without a generator: ``{"seed", "client", "reason"}`` each. They scored
    #: their own data only (NaN in every scenario that needs a pool or a generator).
    without_generator: list[dict[str, Any]] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per (seed, client, scenario): ``accuracy``, ``f1``, ``auc`` in %,
        ``synthetic_rows``, ``client_rows``, ``client_positive_share`` (%)."""
        frame = pd.DataFrame(self.records)
        for m in METRICS:
            frame[m] = frame[m] * 100.0
        frame["client_positive_share"] = frame["client_positive_share"] * 100.0
        order = {s: i for i, s in enumerate(SCENARIOS)}
        frame = frame.sort_values(
            ["seed", "client", "scenario"], key=lambda c: c.map(order) if c.name == "scenario" else c
        )
        return frame.reset_index(drop=True)

    def gains(self) -> pd.DataFrame:
        """Per (seed, client, scenario): ``<metric>_gain`` = scenario − its baseline, in points."""
        by_key = {(r["seed"], r["client"], r["scenario"]): r for r in self.records}
        rows = []
        for (seed, client, scenario), r in by_key.items():
            if scenario not in BASELINE_OF:
                continue
            ref = by_key[(seed, client, BASELINE_OF[scenario])]
            rows.append(
                {"seed": seed, "client": client, "scenario": scenario,
                 "baseline": BASELINE_OF[scenario],
                 **{f"{m}_gain": 100.0 * (float(r[m]) - float(ref[m])) for m in METRICS}}
            )
        return pd.DataFrame(rows)

    def per_client(self) -> pd.DataFrame:
        """Per (client, scenario): scores averaged over seeds, in %."""
        frame = self.to_frame()
        cols = [*METRICS, "synthetic_rows", "client_rows", "client_positive_share"]
        out = frame.groupby(["client", "scenario"], sort=False)[cols].mean().reset_index()
        order = {s: i for i, s in enumerate(SCENARIOS)}
        return out.sort_values(
            ["client", "scenario"], key=lambda c: c.map(order) if c.name == "scenario" else c
        ).reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Per scenario: the clients' average of Accuracy, F1, AUC (%; mean over seeds),
        their standard deviation over seeds (0 with one seed), the baseline and the gain
        over it (points): the clients' average of their own gains, so a client without a
        score in a scenario (a participant without a generator) counts in neither side."""
        frame = self.to_frame()
        per_seed = frame.groupby(["seed", "scenario"])[list(METRICS)].agg(_nanmean_series)
        mean = per_seed.groupby(level="scenario").mean()
        std = per_seed.groupby(level="scenario").std(ddof=0)
        gain_cols = [f"{m}_gain" for m in METRICS]
        gains = self.gains()
        gain = (gains.groupby(["seed", "scenario"])[gain_cols].agg(_nanmean_series)
                .groupby(level="scenario").mean() if len(gains) else None)
        rows = []
        for s in SCENARIOS:
            if s not in mean.index:
                continue
            row: dict[str, Any] = {"scenario": s}
            row.update({m: _f(mean.loc[s, m]) for m in METRICS})
            row.update({f"{m}_std": _f(std.loc[s, m]) for m in METRICS})
            b = BASELINE_OF.get(s)
            row["baseline"] = b or ""
            row.update(
                {f"{m}_gain": _f(gain.loc[s, f"{m}_gain"])
                 if b and gain is not None and s in gain.index else float("nan")
                 for m in METRICS}
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("scenario")

    def to_markdown(
        self,
        references: Sequence[Reference] = (),
        reference_title: str = "the paper (Tables IV and V)",
    ) -> str:
        """The report in Markdown; ``references`` (published numbers, e.g. the paper's
        Tables IV and V for this dataset) are laid out beside ours when given."""
        c = self.config
        lines = [
            f"# 3DGL simulation: {self.dataset}",
            "",
            f"{c['clients']} clients, split `{c['split']}`, ε = {c['epsilon']}, "
            f"{c['seeds']} seed(s) (random_state {c['random_state']}), "
            f"epochs {c.get('epochs') or 'default'}, {c.get('engine', 'local')} engine, "
            f"{c['workers']} worker(s), "
            f"{self.elapsed_seconds:.0f} s. Scores in %, logistic regression, the paper's "
            "evaluation encoding; gains in points over the local-only baseline.",
            "",
            "## Averages over clients",
            "",
        ]
        summary = self.summary().reset_index()
        summary.insert(1, "what", [SCENARIO_TITLES[s] for s in summary["scenario"]])
        lines += [markdown_table(summary), ""]
        if references:
            s = self.summary()
            lines += [f"## Beside {reference_title}", ""]
            rows = []
            for ref in references:
                for col, scen in ref.columns.items():
                    if col not in ref.scores or scen not in s.index:
                        continue
                    rows.append(
                        {"table": ref.table, "column": col, "scenario": scen,
                         **{f"{m} paper": ref.scores[col][i] for i, m in enumerate(METRICS)},
                         **{f"{m} ours": _f(s.loc[scen, m]) for m in METRICS}}
                    )
            lines += [markdown_table(pd.DataFrame(rows)), ""]
        lines += ["## Per client (mean over seeds)", "", markdown_table(self.per_client()), ""]
        if self.without_generator:
            lines += ["## Participants without a generator", "",
                      "They scored their own data only and got no pool "
                      "(contribute-to-access).", "",
                      *[f"- seed {w['seed']}, client {w['client']}: {w['reason']}"
                        for w in self.without_generator], ""]
        if self.warnings:
            lines += ["## Warnings", "", *[f"- {w}" for w in self.warnings], ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary().reset_index()
        return _json_clean(
            {
                "dataset": self.dataset,
                "config": self.config,
                "elapsed_seconds": self.elapsed_seconds,
                "summary": summary.to_dict(orient="records"),
                "records": self.to_frame().to_dict(orient="records"),
                "warnings": self.warnings,
                "without_generator": self.without_generator,
            }
        )

    def plot_gains(self, path: str | os.PathLike[str]) -> Path:
        """A PNG of per-client gains (points over the local-only baseline), one panel per
        metric, one bar group per client (mean over seeds)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        gains = self.gains()
        scenarios = [s for s in SCENARIOS if s in BASELINE_OF and s != "centralized"]
        g = gains.groupby(["client", "scenario"])[[f"{m}_gain" for m in METRICS]].mean()
        clients = sorted(gains["client"].unique())
        fig = Figure(figsize=(max(8.0, 0.9 * len(clients) + 3), 9), constrained_layout=True)
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(METRICS), 1, sharex=True)
        width = 0.8 / len(scenarios)
        x = np.arange(len(clients))
        for ax, m in zip(axes, METRICS, strict=True):
            for i, s in enumerate(scenarios):
                vals = [g.loc[(c, s), f"{m}_gain"] if (c, s) in g.index else np.nan for c in clients]
                ax.bar(x + (i - (len(scenarios) - 1) / 2) * width, vals, width, label=s)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel(f"{m} gain (points)")
        axes[-1].set_xticks(x, [str(c) for c in clients])
        axes[-1].set_xlabel("client")
        axes[0].legend(ncols=min(3, len(scenarios)), fontsize="small")
        fig.suptitle(f"3DGL {self.dataset}: per-client gains over local-only data")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
        return out

    def write(
        self, out_dir: str | os.PathLike[str], references: Sequence[Reference] = ()
    ) -> dict[str, Path]:
        """Write ``report.md`` (with ``references`` beside ours, see :meth:`to_markdown`),
        ``clients.csv``, ``summary.csv``, ``results.json`` and ``gains.png`` to
        ``out_dir``; returns the paths by kind."""
        import json

        from threedgl.schema.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "report.md",
            "clients_csv": out / "clients.csv",
            "summary_csv": out / "summary.csv",
            "json": out / "results.json",
            "plot": out / "gains.png",
        }
        atomic_write_text(paths["markdown"], self.to_markdown(references))
        atomic_write_text(paths["clients_csv"], self.to_frame().to_csv(index=False))
        atomic_write_text(paths["summary_csv"], self.summary().to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        self.plot_gains(paths["plot"])
        return paths


def _nanmean_series(s: pd.Series) -> float:
    return _nanmean(s.to_numpy(dtype=np.float64).tolist())


def _f(value: Any) -> float:
    return float(value)


def _json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
