"""What ``3dgl reproduce`` writes: ``report.html`` (one self-contained page a person reads in
a browser: every table, ours beside the paper's, each plot next to the numbers it
explains, and how every number was obtained) plus ``tables.md``, CSV, JSON and PNG files.

The page has no external resources: the plots are PNGs embedded as base64 ``data:`` URIs
and the style sheet is inline, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from threedgl import datasets
from threedgl._version import __version__
from threedgl.evaluation.plotting import plot_marginals, plot_sweep
from threedgl.experiments.reproduce import COMPARED, GENERATORS, ReproduceConfig, ReproduceResult
from threedgl.experiments.tables import table_ii, table_iii
from threedgl.markdown import markdown_table
from threedgl.schema.io import atomic_write_bytes, atomic_write_text

__all__ = ["RunInfo", "write_outputs", "write_report"]


@dataclass
class RunInfo:
    """How the run was made, for the report's header and its "how obtained" notes."""

    command: str = "3dgl reproduce"
    config: ReproduceConfig | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    federation_seeds: int = 0
    federation_datasets: Sequence[str] = ()
    privacy_datasets: Sequence[str] = ()
    #: The machine's 1-minute load average during each part, sampled every few seconds
    #: (``{"mean": ..., "max": ...}``; the run's own workers count in it).
    load: dict[str, dict[str, float]] = field(default_factory=dict)
    jobs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """How long each part took and how busy the machine was (``results.json``'s
        ``run``)."""
        return {"command": self.command, "seconds": dict(self.seconds),
                "load_average": dict(self.load), "jobs": self.jobs,
                "cpus": os.cpu_count(), "platform": platform.platform(terse=True)}


# -- files -----------------------------------------------------------------------------------
def write_outputs(
    result: ReproduceResult,
    out: Path,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    info: RunInfo | None = None,
) -> list[Path]:
    """Markdown, CSV, JSON, PNG plots and ``report.html`` into ``out``; returns the paths
    (``report.html`` last)."""
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
        md.append(f"## {key}\n\n{markdown_table(table)}\n")
        path = out / f"{key}.csv"
        atomic_write_text(path, table.to_csv(index=False))
        written.append(path)
        if isinstance(table.attrs.get("std"), list):  # the cells' noise, beside them
            path = out / f"{key}_std.csv"
            spread = pd.DataFrame(table.attrs["std"]).reindex(columns=table.columns)
            atomic_write_text(path, spread.to_csv(index=False))
            written.append(path)
    atomic_write_text(out / "tables.md", "\n".join(md))
    atomic_write_text(out / "results.csv", frame.to_csv(index=False))
    atomic_write_text(out / "results.json", json.dumps(
        {"run": info.to_dict() if info is not None else None,
         "rows": frame.to_dict(orient="records"),
         "sweeps": {d: {g: s.to_dict() for g, s in sw.items()} for d, sw in result.sweeps.items()}},
        indent=2, default=float))
    written += [out / "tables.md", out / "results.csv", out / "results.json"]
    plots: dict[str, Path] = {}
    for name, sweeps in result.sweeps.items():
        path = out / f"sweep-{name}.png"
        plot_sweep(sweeps, path, title=f"{name}: test accuracy vs synthetic size (selected on train)")
        plots[f"sweep-{name}"] = path
    for name, (real, synth) in result.marginals.items():
        if not len(synth):
            continue
        schema = datasets.load(name).schema
        path = out / f"marginals-{name}.png"
        plot_marginals(real, synth, schema, [c.name for c in schema.features][:6], path)
        plots[f"marginals-{name}"] = path
    written += list(plots.values())
    report = out / "report.html"
    atomic_write_bytes(report, render_html(tables, plots, result, info or RunInfo()).encode())
    written.append(report)
    return written


def write_report(
    result: ReproduceResult,
    out: Path,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    info: RunInfo | None = None,
) -> Path:
    """Write every output (see :func:`write_outputs`) and return the path of report.html."""
    return write_outputs(result, out, extra_tables, info)[-1]


# -- the page --------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;
max-width:1400px;padding:0 1.5rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.4rem;border-bottom:2px solid #d0d7de;
padding-bottom:.2rem}h3{margin:1.4rem 0 .4rem}
table{border-collapse:collapse;font-size:.82rem;margin:.4rem 0 1rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.ours td{background:#f1f8ff}.paper{color:#57606a;font-size:.74rem;display:block}
.up{color:#1a7f37}.down{color:#cf222e}
.pair{display:flex;gap:1.5rem;align-items:flex-start;flex-wrap:wrap}
.pair>div{flex:1 1 520px;min-width:0;overflow-x:auto}
.pair img,.stack img{max-width:100%;border:1px solid #d0d7de}
.stack>div{overflow-x:auto}
.how{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;font-size:.88rem}
.meta{color:#57606a;font-size:.88rem}code{background:#f6f8fa;padding:0 .2rem}
nav a{margin-right:1rem}
"""

HOW = {
    "table_ii": (
        "For each dataset and seed: a stratified 90/10 split. <b>Real</b>: logistic regression "
        "(scikit-learn defaults, max_iter 1000) trained on the train split. Each generator is "
        "trained on the train split at ε = 1.9, δ = 1e-4 (the no-DP row at ε = ∞); one large "
        "synthetic table is sampled (class-balanced, as the paper, and with the released class "
        "sizes); the synthetic-size sweep (200 rows, ×1.5, patience 3) picks the size and the "
        "class mix by accuracy on the <i>real train split</i> (never the test split); the "
        "classifier trained on that prefix is scored on the test split. The paper encodes "
        "categories as label codes then min-max scales; so do we. Mean ± std over seeds; the "
        "paper's number and our difference Δ under ours (paper rows: our default model and the "
        "paper-mode model, beside the paper's DDP-βVAE). The plot: test accuracy of every "
        "prefix the sweep fitted (seed 0, scored for the plot only), the chosen size starred."),
    "table_ii_hgb": (
        "As Table II with histogram gradient boosting (scikit-learn defaults) trained on the "
        "same selected prefix; the paper reports logistic regression only."),
    "table_iii": (
        "A synthetic table with as many rows as the train split (released class sizes). "
        "Discriminator: logistic regression telling real train rows from synthetic rows, 10-fold "
        "stratified CV (AUC 50 = indistinguishable); extra: gradient boosting, 5 folds on at "
        "most 10,000 rows a side. KLD: per-feature KL(real ‖ synthetic) over 20 schema bins "
        "with add-one smoothing, averaged (the paper's formula is unstated; its absolute values "
        "are not comparable). TLD = (KLD / accuracy)^(1 − AUC). Pairwise Δ: mean |difference| "
        "of the association matrices. <b>tvd k-way</b>: the total variation distance "
        "½ Σ |p<sub>real</sub> − p<sub>synthetic</sub>| between the train split's and the "
        "synthetic table's cell frequencies, averaged over every set of k columns (k = 1, 2, 3; "
        "the class included; a seeded sample of 2,000 sets above that), in public bins from the "
        "schema (a category each; an integer column with at most 16 values, a value each; any "
        "other numeric column, 16 equal-width bins over its bounds): in [0, 1], lower is "
        "better; the <i>floor</i> row is the real test split against the train split, what two "
        "real samples differ by (the test split is the smaller, so a synthetic table as large "
        "as the train split can go below it). The plot: real vs synthetic marginals "
        "(seed 0, our DDP-βVAE)."),
    "table_iv": (
        "3DGL simulation: 10 stratified clients, each trains its own generator at ε = 1.9 and "
        "publishes it; every client pulls the Generators Pool. Real: 10-fold CV of logistic "
        "regression on the client's rows; Fold-Fold: pool rows, size selected and scored by CV "
        "on the client's rows. Averages over clients (and seeds)."),
    "table_v": (
        "Same simulation. Real: logistic regression trained on the client's rows, scored on the "
        "external test set; Fold-Test: pool rows with the size selected on the client's rows; "
        "Test-Test: size selected on the test set (optimistic, the paper's column)."),
    "privacy": (
        "Membership inference: members = the generator's training rows, non-members = "
        "held-out rows, a disjoint reference set (stratified 50/25/25 split of at most 6,000 "
        "rows). Attacks: distance to the closest synthetic record (dcr), DOMIAS-style density "
        "ratio, LOGAN-style discriminator. 'full': all member rows; 'small': 100 member rows "
        "for 300 epochs, where a non-private model can memorise. AUC 0.5 = guessing; bootstrap "
        "intervals and TPR at 1 % / 10 % FPR are in privacy.csv."),
    "noniid": (
        "3dgl reproduce --noniid: every dataset split as 3dgl simulate --split splits it "
        "(Dirichlet 0.5 and 0.1 over the classes, or quantity skew 0.3), 10 clients, DDP-βVAE "
        "in the default mode or DP marginals, ε = 1.9. Fold-Test accuracy (%) of the pool, "
        "mean over clients and seeds; centralized = one classifier on every client's rows; "
        "local only = each client's own rows. Δ in points."),
    "audit": (
        "One-run privacy audit (Steinke, Nasr & Jagielski 2023; 3dgl audit): canary rows "
        "uniform over the schema's domain, as many as the rows up to 1,000, each inserted "
        "with probability 1/2; one training; the 10 % highest and lowest scores (the "
        "generator's likelihood of the canary) guessed in and out; the ε those guesses prove "
        "at 95 % confidence, beside the claimed ε. A bound above the claim would be a bug."),
}

TITLES = {
    "table_ii": "Table II — utility: logistic regression trained on Real or Synth (%)",
    "table_ii_hgb": "Table II (extra) — histogram gradient boosting (%)",
    "table_iii": "Table III — fidelity: discriminator (%), KLD, TLD, k-way marginal TVD",
    "table_iv": "Table IV — 3DGL, our DDP-βVAE: Fold-Fold vs local CV (%)",
    "table_v": "Table V — 3DGL, our DDP-βVAE: Fold-Test, Test-Test vs local (%)",
    "table_iv_paper": "Table IV — 3DGL, the paper's DDP-βVAE (Table I): Fold-Fold (%)",
    "table_v_paper": "Table V — 3DGL, the paper's DDP-βVAE (Table I): Fold-Test, Test-Test (%)",
    "privacy": "Privacy — membership-inference attacks (AUC)",
    "noniid": "Label and quantity skew — the pool in the default mode (%)",
    "audit": "Privacy — empirical audit: ε lower bound beside the claimed ε",
}

_PAPER_RE = re.compile(r"^(.*?) \(paper ([^,]+), Δ ([^)]+)\)$")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "<td></td>"
        return f'<td class="n">{value:.2f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n">{value}</td>'
    text = str(value)
    m = _PAPER_RE.match(text)
    if m:
        ours, paper, delta = m.groups()
        cls = "up" if delta.startswith("+") else "down"
        return (f'<td class="n">{html.escape(ours)}<span class="paper">paper {html.escape(paper)}'
                f', <span class="{cls}">Δ {html.escape(delta)}</span></span></td>')
    return f"<td>{html.escape(text)}</td>"


def html_table(df: pd.DataFrame, highlight: Sequence[str] = ()) -> str:
    """An HTML table of ``df``; rows whose ``source`` is in ``highlight`` are tinted."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, row in df.iterrows():
        cls = ' class="ours"' if str(row.get("source", "")) in highlight else ""
        rows.append(f"<tr{cls}>" + "".join(_cell(row[c]) for c in df.columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _paper_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Tables IV and V: "<x> paper" and "<x> ours" columns become one cell "ours (paper)"."""
    out = pd.DataFrame({"dataset": df["dataset"]})
    for col in df.columns:
        if not col.endswith(" ours"):
            continue
        base = col[: -len(" ours")]
        cells = []
        for ours, ref in zip(df[col], df.get(f"{base} paper", [float("nan")] * len(df)),
                             strict=True):
            if ours != ours:
                cells.append("" if ref != ref else f"— (paper {ref:.2f})")
            elif ref != ref:
                cells.append(f"{ours:.2f}")
            else:
                cells.append(f"{ours:.2f} (paper {ref:.2f}, Δ {ours - ref:+.2f})")
        out[base] = cells
    return out


def _privacy_wide(table: pd.DataFrame) -> pd.DataFrame:
    wide = table.pivot_table(index=["dataset", "mode", "setting"], columns=["epsilon", "attack"],
                             values="auc", sort=False)
    wide.columns = [f"ε={col[0]:g} {col[1]}" for col in wide.columns]
    return wide.reset_index()


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(
    tables: Mapping[str, pd.DataFrame],
    plots: Mapping[str, Path],
    result: ReproduceResult,
    info: RunInfo,
) -> str:
    """The whole page as one string (see the module docstring)."""
    cfg = info.config
    parts: list[str] = []
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    timing = ", ".join(
        f"{k} {v / 60:.1f} min" + (f" (load average {info.load[k]['mean']:.1f})"
                                   if k in info.load else "")
        for k, v in info.seconds.items())
    parts.append("<h1>threedgl: reproduction of the 3DGL / DDP-βVAE paper</h1>")
    parts.append(
        f'<p class="meta">threedgl {html.escape(__version__)} · {now} · '
        f"<code>{html.escape(info.command)}</code> · {os.cpu_count()} CPU(s), "
        f"{html.escape(platform.platform(terse=True))}"
        + (f" · {html.escape(timing)}" if timing else "") + "</p>")
    if cfg is not None:
        parts.append(
            f'<p class="meta">Tables II and III: datasets {html.escape(", ".join(cfg.datasets))}; '
            f"{cfg.seeds} seed(s); generators {html.escape(', '.join(cfg.generators))}"
            + (f"; at most {cfg.max_train_rows:,} train rows (quick mode)" if cfg.max_train_rows
               else "") + ". "
            + (f"Tables IV and V: {', '.join(info.federation_datasets)}, "
               f"{info.federation_seeds} seed(s). " if info.federation_datasets else "")
            + (f"Privacy table: {', '.join(info.privacy_datasets)}." if info.privacy_datasets
               else "") + "</p>")
    parts.append("<p>Scores in %. Rows tinted blue are the DDP-βVAE models compared with the "
                 "paper's DDP-βVAE; the paper's number and our difference Δ stand under ours. "
                 "Nothing was selected on a test split.</p>")
    nav = [f'<a href="#{k}">{html.escape(TITLES.get(k, k).split(" — ")[0])}'
           + (" (paper mode)" if k.endswith("_paper") else "") + "</a>" for k in tables]
    parts.append("<nav>" + "".join(nav) + "</nav>")
    highlight = list(COMPARED)
    for key, table in tables.items():
        title = TITLES.get(key, key)
        parts.append(f'<h2 id="{html.escape(key)}">{html.escape(title)}</h2>')
        how = HOW.get(key) or HOW.get(key.replace("_paper", ""))
        if how:
            parts.append(f'<p class="how"><b>How obtained.</b> {how}</p>')
        if key in ("table_ii", "table_iii") and "dataset" in table:
            kind = "sweep" if key == "table_ii" else "marginals"
            layout = "pair" if key == "table_ii" else "stack"
            for name in dict.fromkeys(table["dataset"]):
                rows = table[table["dataset"] == name].drop(columns=["dataset"])
                plot = plots.get(f"{kind}-{name}")
                parts.append(f"<h3>{html.escape(name)}</h3>")
                parts.append(f'<div class="{layout}"><div>' + html_table(rows, highlight)
                             + "</div>" + (f"<div>{_img(plot, f'{kind} plot of {name}')}</div>"
                                           if plot is not None else "") + "</div>")
        elif key.startswith(("table_iv", "table_v")):
            parts.append(html_table(_paper_pairs(table)))
        elif key == "privacy" and len(table):
            parts.append(html_table(_privacy_wide(table)))
            note = table.attrs.get("note")
            if note:
                parts.append(f'<p class="meta">{html.escape(str(note))}</p>')
        else:
            parts.append(html_table(table, highlight))
    parts.append("<h2>Generators compared</h2><ul>" + "".join(
        f"<li><b>{html.escape(name)}</b>: <code>{html.escape(kind)}</code>, ε = {eps:g}"
        + (f", mode {html.escape(mode)}" if mode else "") + "</li>"
        for name, (kind, eps, mode) in GENERATORS.items()) + "</ul>")
    parts.append('<p class="meta">Every seed\'s scores: results.csv; each table as CSV beside '
                 "this file; tables.md for Markdown.</p>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>threedgl reproduction</title><style>" + CSS + "</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


class LoadSampler:
    """The machine's 1-minute load average, sampled every ``every`` seconds in a
    background thread while the block runs (``with LoadSampler() as load: ...``, then
    ``load.summary()``): how busy the machine was while a part of the run was timed.
    Empty where the system has no load average."""

    def __init__(self, every: float = 5.0) -> None:
        import threading

        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="threedgl-load")

    def _sample(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # no load average here
            self.samples.append(os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> LoadSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict[str, float]:
        """``{"mean": ..., "max": ...}`` of the samples (empty without any)."""
        if not self.samples:
            return {}
        return {"mean": round(sum(self.samples) / len(self.samples), 2),
                "max": round(max(self.samples), 2)}
