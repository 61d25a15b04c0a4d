"""The field's peers, MST (McKenna et al. 2021) and AIM (McKenna et al. 2022), on a split.

Benchmark-only: run with the peers' own interpreter (``make peers`` builds ``.venv-peers``
with Python 3.11 from ``benchmarks/peers-requirements.txt``: dpmm 0.1.9 and its pinned
dependencies; no torch, no JAX, and threedgl is not installed there)::

    .venv-peers/bin/python benchmarks/peers.py --method mst --train train.csv \\
        --schema schema.json --epsilon 1.9 --delta 1e-4 --seed 0 --out synthetic.csv

From the main venv, ``benchmarks/_peers.py`` (``run_peer``) does the same in a subprocess.

The mechanisms are dpmm's, as installed from PyPI (``dpmm``, S. Mahiou and G. Ganev, "dpmm:
Differentially Private Marginal Models, a Library for Synthetic Tabular Data Generation",
arXiv:2506.00322, Apache-2.0): its ``MSTPipeline`` and ``AIMPipeline``
(``dpmm.pipelines``), implementations of MST (R. McKenna, G. Miklau, D. Sheldon, "Winning
the NIST Contest: A scalable and general approach to differentially private synthetic
data", JPC 2021, arXiv:2108.04978) and AIM (R. McKenna, B. Mullins, D. Sheldon, G. Miklau,
"AIM: An Adaptive and Iterative Mechanism for Differentially Private Synthetic Data", VLDB
2022, arXiv:2201.12677) on a numpy Private-PGM estimator (R. McKenna, D. Sheldon, G. Miklau,
"Graphical-model based estimation and inference for differential privacy", ICML 2019,
arXiv:1901.09136), with the zCDP accounting, the budget splits and the domain compression
those papers describe. This script only calls them; it contains no mechanism code. The
calls::

    pipe = MSTPipeline(epsilon=ε, delta=δ, compress=True, n_jobs=1,   # AIM: compress=False
                       gen_kwargs={...}, disable_processing=True)   # or AIMPipeline
    pipe.fit(codes, domain={column: number of codes}, random_state=seed)
    codes_out = pipe.generate(n_records=rows, random_state=seed)

Settings: dpmm's defaults, except where the papers fix a value that dpmm's default does not
follow. MST: 5,000 mirror-descent iterations for the final model (dpmm's ``MSTGM`` default;
``--iters``), domain compression on (the paper's: 1-way cells measured below 3σ merged
into one). AIM: the paper's workload, every 3-way marginal of at most 10,000 cells
(``--degree``, ``--max-cells``; dpmm's default degree is 2), the paper's model-size limit
of 80 MB (``--max-model-size``; ``MMPipeline`` would pass none), 16·d rounds at most,
1,000 iterations per round with warm starts (``--iters``), and no domain compression, as
in the paper (dpmm's ``AIMGM`` compresses by default; with AIM's larger 1-way σ that
merged Titanic's 32 age bins into 4 and, in one run at ε = 1.9, cost 1-/2-/3-way TVD
.051/.117/.194 against .017/.075/.150 without; ``--compress``/``--no-compress``
override either method's default). ``n_jobs=1``: one process (dpmm would otherwise start a
``multiprocessing`` pool).

Budget: ALL of (ε, δ) goes to the mechanism; dpmm's own preprocessing (its DP PrivTree or
uniform binner, which spends ``proc_epsilon`` or needs bounds) is switched off
(``disable_processing=True``) and the mechanism gets our integer codes with their domain
sizes, so both dpmm and threedgl see the same public bins and nothing is spent on
preprocessing. The class column is an ordinary column. The number of synthetic rows is the
train split's (or ``--rows``), taken as public, as everywhere in this benchmark.

Discretisation, a public rule from the schema alone (the default rule of threedgl's
``threedgl.schema.bins``, with B = ``--bins``, 32 by default):

* a categorical column (the class column included): one code per category;
* an integer column whose bounds are integers and hold at most max(B, 20) values: one code
  per value (decoded exactly);
* any other numeric column: B equal-width bins over the schema's ``[minimum, maximum]``,
  in ``x``, or in ``log1p(x − minimum)`` when the schema declares ``scale="log"`` (Titanic's
  ``fare``, Adult's capital columns; ``--linear`` ignores the declared scale); values
  outside the bounds are clipped to them; a column with ``minimum == maximum``: one code.

Decoding: a float column's value is drawn uniformly within its bin (on the column's
scale); an integer column's value is drawn uniformly among the integers its bin holds (a
bin that holds none, a narrow log bin near the minimum: the integer nearest its middle).
The metric (``threedgl.evaluation.marginals``) uses 16 linear bins; these bins are not
chosen from it (32 linear bins happen to nest in its 16, log bins do not).

Seeds: dpmm's exponential mechanism, its domain compression and its sampling draw from
``RandomState(--seed)``, the decoding from ``default_rng(--seed)``, and the script
re-executes itself with ``PYTHONHASHSEED=0`` (networkx and the estimator iterate over sets
of column names). dpmm's measurement noise, though, is OpenDP's Gaussian mechanism
(``make_gaussian``), which draws from the operating system's secure generator and cannot
be seeded: two runs with one seed are two independent runs of the mechanism.
``--seeded-noise`` (for debugging only) makes a seed reproduce a table bit for bit by
giving dpmm numpy's ``normal`` (``RandomState(--seed + 1)``) in place of OpenDP's noise.

Output: the synthetic CSV (the schema's columns, in order) and, on stdout, one JSON line
``{"method", "fit_seconds", "sample_seconds", ...}``: ``fit_seconds`` is dpmm's ``fit``
alone (the measurements, the selection, the estimation), ``setup_seconds`` the import,
reading and encoding before it. ``--max-seconds`` bounds the run (setup, fit and sampling);
past it the script writes no CSV, prints the JSON line with ``"finished": false`` (and,
for AIM, the rounds done) and exits with code 3 (from a watchdog thread 30 s later if the
run is inside a long numpy call then).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXIT_TIMEOUT = 3
LEVELS = 20  # integer columns with at most max(bins, LEVELS) values: one code per value


# -- schema and discretisation (stdlib + numpy: threedgl is not installed here) -----------
def _key(value: Any) -> str:
    """The string a category is matched by (as ``threedgl.schema.conform._key``)."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Column:
    """One schema column and its public codes."""

    def __init__(self, raw: dict[str, Any], bins: int, linear: bool) -> None:
        self.name: str = raw["name"]
        self.kind: str = raw["kind"]
        if self.kind == "categorical":
            self.categories = list(raw["categories"])
            self.lookup = {_key(c): i for i, c in enumerate(self.categories)}
            fb = raw.get("fallback")
            self.fallback = None if fb is None else self.lookup[_key(fb)]
            self.size = len(self.categories)
            self.rule = "categorical"
            return
        if self.kind != "numeric":
            raise SystemExit(f"column '{self.name}': unknown kind {self.kind!r}")
        self.lo, self.hi = float(raw["minimum"]), float(raw["maximum"])
        self.integer = bool(raw.get("integer", False))
        self.scale = "linear" if linear else raw.get("scale", "linear")
        self.span = self.hi - self.lo
        ilo, ihi = math.ceil(self.lo), math.floor(self.hi)
        n_int = ihi - ilo + 1
        if self.span <= 0:
            self.rule, self.size = "constant", 1
        elif (self.integer and ilo == self.lo and ihi == self.hi
              and n_int <= max(bins, LEVELS)):
            self.rule, self.size = "levels", int(n_int)
        else:
            self.rule, self.size = self.scale, bins
            if self.integer:
                self._integers_per_bin(ilo, ihi)

    # numeric value <-> position t in [0, 1] on the column's scale
    def _to_t(self, x: np.ndarray) -> np.ndarray:
        u = np.clip((x - self.lo) / self.span, 0.0, 1.0)
        if self.rule == "log":
            return np.log1p(u * self.span) / math.log1p(self.span)
        return u

    def _from_t(self, t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0.0, 1.0)
        u = np.expm1(t * math.log1p(self.span)) / self.span if self.rule == "log" else t
        return self.lo + u * self.span

    def _bin(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(self._to_t(x) * self.size), 0, self.size - 1).astype(np.int64)

    def _integers_per_bin(self, ilo: int, ihi: int) -> None:
        """``first[b]``..``first[b+1]``: the integers of the bounds that fall in bin b."""
        if ihi - ilo < 10_000_000:
            codes = self._bin(np.arange(ilo, ihi + 1, dtype=np.float64))
            first = ilo + np.searchsorted(codes, np.arange(self.size + 1), side="left")
        else:  # huge ranges: the bin edges (float rounding at an edge is immaterial here)
            edges = self._from_t(np.arange(self.size + 1) / self.size)
            first = np.clip(np.ceil(edges), ilo, ihi + 1)
            first[0], first[-1] = ilo, ihi + 1
        self.first = np.asarray(first, dtype=np.float64)
        mids = self._from_t((np.arange(self.size) + 0.5) / self.size)
        self.nearest = np.clip(np.rint(mids), ilo, ihi)

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.kind == "categorical":
            keys = values.astype(str)
            codes = keys.map(self.lookup)
            if codes.isna().any():  # ``1.0`` read back from a float column matches ``1``
                codes = codes.fillna(keys.map(_norm).map(self.lookup))
            bad = codes.isna()
            if bad.any():
                if self.fallback is None:
                    raise SystemExit(f"column '{self.name}': values not among its categories: "
                                     f"{sorted(set(values[bad]))[:5]}")
                codes = codes.fillna(self.fallback)
            return codes.to_numpy(dtype=np.int64)
        x = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64)
        if self.rule == "constant":
            return np.zeros(len(x), dtype=np.int64)
        if self.rule == "levels":
            return np.clip(np.rint(x) - self.lo, 0, self.size - 1).astype(np.int64)
        return self._bin(x)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        n = len(codes)
        if self.kind == "categorical":
            out = np.empty(n, dtype=object)
            out[:] = [self.categories[c] for c in codes]
            return out
        if self.rule == "constant":
            x = np.full(n, self.lo)
        elif self.rule == "levels":
            x = self.lo + codes.astype(np.float64)
        elif self.integer:
            start = self.first[codes]
            count = self.first[codes + 1] - start
            drawn = start + np.floor(rng.random(n) * np.maximum(count, 1))
            x = np.where(count > 0, drawn, self.nearest[codes])
        else:
            x = self._from_t((codes + rng.random(n)) / self.size)
        return np.rint(x).astype(np.int64) if self.integer else x


def _norm(s: str) -> str:
    """A CSV cell as a numeric category's key: ``1.0`` → ``1``."""
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() else s


def read_schema(path: str, bins: int, linear: bool) -> list[Column]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format", "threedgl.schema") != "threedgl.schema":
        raise SystemExit(f"'{path}' is not a threedgl schema")
    return [Column(raw, bins, linear) for raw in data["columns"]]


# -- the mechanisms: dpmm's pipelines, called ---------------------------------------------
def make_pipeline(args: argparse.Namespace) -> Any:
    """dpmm's ``MSTPipeline`` or ``AIMPipeline``, its preprocessing off (codes go in)."""
    from dpmm.pipelines import AIMPipeline, MSTPipeline

    gen_kwargs: dict[str, Any] = {}
    if args.iters is not None:
        gen_kwargs["n_iters"] = args.iters
    if args.method == "mst":
        cls, max_model_size = MSTPipeline, None
    else:
        cls, max_model_size = AIMPipeline, args.max_model_size
        gen_kwargs.update(degree=args.degree, max_cells=args.max_cells)
    return cls(epsilon=args.epsilon, delta=args.delta, compress=args.compress,
               max_model_size=max_model_size, n_jobs=1, gen_kwargs=gen_kwargs,
               disable_processing=True)


def seeded_noise(seed: int) -> None:
    """``--seeded-noise``: dpmm's Gaussian noise from numpy, seeded (debugging only)."""
    import dpmm.models.aim
    import dpmm.models.base.mechanisms.mechanism
    import dpmm.models.mst

    rng = np.random.RandomState(seed + 1)

    def noise(sigma: float, size: Any = None) -> Any:
        return rng.normal(0.0, sigma, size=size)

    for module in (dpmm.models.aim, dpmm.models.mst, dpmm.models.base.mechanisms.mechanism):
        if hasattr(module, "gaussian_noise"):
            module.gaussian_noise = noise


def first_cliques(args: argparse.Namespace, columns: list[Column]) -> int:
    """How many 1-way marginals dpmm measures before it selects anything.

    MST: every column's. AIM: those of the columns in some clique of its workload (the
    ``--degree``-way marginals of at most ``--max-cells`` cells, on our domain sizes).
    """
    if args.method == "mst":
        return len(columns)
    used = set()
    for combo in itertools.combinations(columns, args.degree):
        if math.prod(c.size for c in combo) <= args.max_cells:
            used.update(c.name for c in combo)
    return len(used)


def progress(pipe: Any, method: str, first: int) -> dict[str, Any]:
    """What dpmm's mechanism has selected so far: its ``cliques`` after the first 1-ways."""
    cliques = [list(c) for c in (getattr(pipe.gen.generator, "cliques", None) or [])]
    out: dict[str, Any] = {"cliques": cliques[first:]}
    if method == "aim":
        out["rounds"] = max(len(cliques) - first, 0)
    return out


def describe(pipe: Any, columns: list[Column]) -> dict[str, Any]:
    """The fitted mechanism's privacy parameters and compressed domain, for the JSON line."""
    mech = pipe.gen.generator
    out: dict[str, Any] = {"rho": float(mech.rho)}
    if hasattr(mech, "sigma"):
        out["sigma"] = float(mech.sigma)
    comp = getattr(mech, "compressor", None)
    supports = getattr(comp, "supports", None) or {}
    if supports:
        out["compressed_domain"] = {
            c.name: int(supports[c.name].sum()) + int(not supports[c.name].all())
            for c in columns if c.name in supports}
    return out


# -- main ---------------------------------------------------------------------------------
class _OutOfTime(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _OutOfTime


def _watchdog(info: dict[str, Any], seconds: float, start: float,
              more: Any) -> threading.Timer:
    """The alarm cannot interrupt a long call into numpy: exit from a thread."""

    def fire() -> None:
        try:
            out = {**info, **more(), "finished": False,
                   "seconds": round(time.monotonic() - start, 3),
                   "reason": f"not finished within --max-seconds (stopped at {seconds:g} s)"}
            print(json.dumps(out), flush=True)
        finally:
            os._exit(EXIT_TIMEOUT)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=("mst", "aim"), required=True)
    p.add_argument("--train", required=True, help="the train split, CSV")
    p.add_argument("--schema", required=True, help="threedgl schema JSON")
    p.add_argument("--epsilon", type=float, required=True)
    p.add_argument("--delta", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="synthetic CSV to write")
    p.add_argument("--rows", type=int, default=None, help="default: the train split's rows")
    p.add_argument("--bins", type=int, default=32, help="bins of a numeric column")
    p.add_argument("--linear", action="store_true", help="ignore the schema's log scales")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="setup + fit + sample bound")
    p.add_argument("--iters", type=int, default=None,
                   help="mirror-descent iterations (dpmm's default: MST 5000, AIM 1000/round)")
    p.add_argument("--compress", action=argparse.BooleanOptionalAction, default=None,
                   help="dpmm's domain compression (default: on for MST, off for AIM)")
    p.add_argument("--degree", type=int, default=3, help="AIM: workload of all k-way marginals")
    p.add_argument("--max-cells", type=int, default=10_000, help="AIM: workload cliques' cells")
    p.add_argument("--max-model-size", type=float, default=80.0, help="AIM: MB (paper: 80)")
    p.add_argument("--seeded-noise", action="store_true",
                   help="debugging: numpy noise from the seed instead of OpenDP's")
    args = p.parse_args()
    if args.compress is None:
        args.compress = args.method == "mst"
    if os.environ.get("PYTHONHASHSEED") != "0":  # networkx and dpmm iterate over sets
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "PYTHONHASHSEED": "0"})
    if not (args.epsilon > 0 and 0 < args.delta < 1):
        p.error("need ε > 0 and 0 < δ < 1")

    start = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, args.max_seconds)
    info: dict[str, Any] = {"method": args.method, "epsilon": args.epsilon, "delta": args.delta,
                            "seed": args.seed, "bins": args.bins, "linear": args.linear,
                            "compress": args.compress,
                            "seeded_noise": args.seeded_noise}
    state: dict[str, Any] = {}

    def more() -> dict[str, Any]:
        pipe = state.get("pipe")
        return {} if pipe is None else progress(pipe, args.method, state["first"])

    watchdog = _watchdog(info, args.max_seconds + 30, start, more)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import dpmm.pipelines  # noqa: F401
        info["versions"] = {name: _version(name)
                            for name in ("dpmm", "opendp", "numpy", "pandas", "scipy")}
        if args.seeded_noise:
            seeded_noise(args.seed)
        columns = read_schema(args.schema, args.bins, args.linear)
        train = pd.read_csv(args.train, dtype=str, keep_default_na=False, na_filter=False)
        missing = [c.name for c in columns if c.name not in train.columns]
        if missing:
            raise SystemExit(f"'{args.train}' lacks the schema's column(s) {missing}")
        rows = args.rows or len(train)
        info["rows"] = rows
        info["domain"] = {c.name: [c.rule, c.size] for c in columns}
        codes = pd.DataFrame({c.name: c.encode(train[c.name]) for c in columns})
        state["first"] = first_cliques(args, columns)
        pipe = state["pipe"] = make_pipeline(args)
        fit_start = time.monotonic()
        info["setup_seconds"] = round(fit_start - start, 3)
        pipe.fit(codes, domain={c.name: c.size for c in columns}, random_state=args.seed)
        fitted = time.monotonic()
        info["fit_seconds"] = round(fitted - fit_start, 3)
        info.update(describe(pipe, columns), **progress(pipe, args.method, state["first"]))
        synth = pipe.generate(n_records=rows, random_state=args.seed)
        rng = np.random.default_rng(args.seed)
        out = pd.DataFrame({c.name: c.decode(synth[c.name].to_numpy(), rng) for c in columns})
        signal.setitimer(signal.ITIMER_REAL, 0)
        watchdog.cancel()
    except _OutOfTime:
        info.update(more(), finished=False, seconds=round(time.monotonic() - start, 3),
                    reason=f"not finished within --max-seconds {args.max_seconds:g}")
        print(json.dumps(info), flush=True)
        return EXIT_TIMEOUT
    info["sample_seconds"] = round(time.monotonic() - fitted, 3)
    tmp = Path(args.out).with_name(f".{Path(args.out).name}.tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, args.out)
    info["finished"] = True
    print(json.dumps(info), flush=True)
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
