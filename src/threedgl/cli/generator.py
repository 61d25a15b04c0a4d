"""``3dgl train``, ``3dgl sample`` and ``3dgl inspect``: one client's generator."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import typer
from rich.progress import Progress, TaskID
from rich.text import Text

from threedgl.cli._common import (
    EncodingOpt,
    cleared_on_error,
    console,
    fail,
    progress_bar,
    user_errors,
    warn,
)


def train(
    data: Path = typer.Argument(..., help="The private table (CSV or Parquet)."),
    target: str | None = typer.Option(None, "--target", "-t", help="The class column (omit for one model on all rows)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the generator (.3dgl)."),
    schema_path: Path | None = typer.Option(None, "--schema", "-s", help="The federation's public schema (JSON). Without it one is inferred from the data (not private)."),
    preset: str | None = typer.Option(None, "--preset", "-p", help="The paper's Table I model (implies --paper): titanic, breast-cancer, mushrooms, adult, wine-quality."),
    paper: bool = typer.Option(False, "--paper", help="The paper's DDP-βVAE as published (decoder means, argmax categories, exact class sizes) instead of the default (sampled bins, DP marginal anchor, noisy class sizes)."),
    bins: int | None = typer.Option(None, "--bins", help="Bins of a numeric column (default mode; default: chosen from the noisy class sizes)."),
    epsilon: float = typer.Option(1.9, "--epsilon", "-e", help="Privacy budget ε of each class model ('inf' for no privacy)."),
    delta: float = typer.Option(1e-4, "--delta", "-d", help="Privacy parameter δ."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over each class (default: chosen automatically from the noisy class sizes; --paper: Table I's).", show_default=False),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Expected Poisson batch size B, q = B / n_class (default: chosen automatically from the noisy class sizes; --paper: Table I's).", show_default=False),
    max_grad_norm: float | None = typer.Option(None, "--max-grad-norm", help="Per-sample clipping norm C (default 1.0).", show_default=False),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Adam learning rate (default 0.005; --paper: Table I's).", show_default=False),
    accountant: str = typer.Option("rdp", "--accountant", help="Privacy accountant: rdp or prv."),
    kind: str = typer.Option("ddp-betavae", "--generator", help="ddp-betavae, or dp-marginals (the independent-marginals baseline)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the training noise (reproducible runs; leave unset for a real release)."),
    secure_mode: bool = typer.Option(False, "--secure-mode", help="Draw the privacy noise and Poisson masks from the OS CSPRNG (as Opacus' secure mode)."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    ledger: Path | None = typer.Option(None, "--ledger", help="Privacy budget ledger file (default ~/.threedgl/ledger.json or $THREEDGL_LEDGER)."),
    force: bool = typer.Option(False, "--force", help="Train even if the ledger's budget for this table would be exceeded."),
    encoding: str | None = EncodingOpt,
) -> None:
    """Train a DDP-βVAE generator (one DP β-VAE per class) and write it to a .3dgl file."""
    from threedgl.privacy import ledger as ledger_mod
    from threedgl.schema import Schema, read_table

    with user_errors():
        if output.suffix != ".3dgl":
            fail(f"output '{output}' must end in .3dgl")
        if kind not in ("ddp-betavae", "dp-marginals"):
            fail(f"--generator must be 'ddp-betavae' or 'dp-marginals', got '{kind}'")
        with progress_bar(bar_width=20) as bar, cleared_on_error(bar), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bars = ClassBars(bar)
            # read in chunks, text as categories; bad input answers before torch is imported
            df = read_table(data, encoding, compact=True,
                            progress=lambda done, size: bars.stage(
                                f"reading {shown(data.name, 17)} (MB)", done >> 20, size >> 20))
            schema = Schema.read(schema_path) if schema_path is not None else None
            book = ledger_mod.Ledger.open(ledger)
            fingerprint = book.identify(df, progress=lambda done, total: bars.stage(
                "fingerprinting the table", done, total))
            if math.isfinite(epsilon):
                book.check(fingerprint, epsilon=epsilon, delta=delta, accountant=accountant,
                           force=force)
            elif epsilon == math.inf:
                warn("--epsilon inf: the generator is trained WITHOUT differential privacy; it "
                     "may reveal rows of the table, so do not share it. The ledger does not "
                     "count it")
            from threedgl.model.registry import create_generator

            params: dict = {"epsilon": epsilon, "delta": delta, "accountant": accountant,
                            "random_state": seed, "secure_mode": secure_mode}
            if kind == "ddp-betavae":
                if paper:
                    params["mode"] = "paper"
                for name, value in (("epochs", epochs), ("batch_size", batch_size),
                                    ("max_grad_norm", max_grad_norm),
                                    ("learning_rate", learning_rate), ("bins", bins)):
                    if value is not None:
                        params[name] = value
            gen = create_generator(kind, preset if kind == "ddp-betavae" else None, **params)
            bars.gen = gen
            bars.total = None if hasattr(gen, "epochs") else 1  # else: one measurement a class
            if schema is None:
                warn(
                    "no --schema: inferring the schema from the private table; its bounds and "
                    "categories are NOT protected by differential privacy"
                )

            def within_budget(spend: list) -> None:
                """What the fit will spend, checked against the ledger before any step."""
                if math.isfinite(epsilon):
                    entry = book.planned_entry(fingerprint, gen.generator_kind,
                                               gen.schema_.target, spend)
                    book.check_entry(entry, force=force, planned=True)

            gen.fit(df, target=target, schema=schema, nan_policy="drop" if drop_missing else "error",
                    progress=bars, ledger=False,  # recorded below, with the file's path
                    before_training=within_budget)
            del df
        for w in caught:
            if "inferring one from the training data" not in str(w.message):
                warn(str(w.message))
        entry = book.entry(fingerprint, gen.manifest_, source=str(data))
        if math.isfinite(gen.epsilon_):
            book.check_entry(entry, force=force)
        gen.save(output)
        entry["weights_sha256"] = gen.manifest_["weights_sha256"]
        if ledger_mod.counted(entry):
            book.record(entry)
    eps = gen.epsilon_
    console.print(
        f"wrote {output}: {gen.generator_kind}, {len(gen.labels_)} class model(s), "
        f"ε = {'inf (NOT private)' if math.isinf(eps) else format(eps, '.4f')}, δ = {gen.delta_:g}"
    )


class ClassBars:
    """``3dgl train``'s progress: a bar for each long step before training (reading,
    fingerprint, schema, encoding), then one per class model, named by its label, counting
    its DP-Adam steps (batches) once they are known, with its epoch and ε spent."""

    def __init__(self, bar: Progress, gen: object = None, total: int | None = None) -> None:
        self.bar, self.gen, self.total = bar, gen, total
        self.tasks: dict[int, TaskID] = {}
        self.stages: dict[str, TaskID] = {}
        self.epochs: dict[int, int] = {}
        self.by_steps: set[int] = set()

    def stage(self, what: str, done: int, total: int) -> None:
        if what not in self.stages:
            self.stages[what] = self.bar.add_task(shown(what, 30), total=total, status="")
        self.bar.update(self.stages[what], completed=done, total=total)

    def _task(self, k: int) -> TaskID:
        if k not in self.tasks:
            schema = getattr(self.gen, "schema_", None)  # set before the classes train
            target = getattr(schema, "target", None)
            labels = list(schema.labels) if schema is not None and target else []
            name = f"{target} = {labels[k]}" if k < len(labels) else "all rows"
            self.tasks[k] = self.bar.add_task(shown(name, 30), total=self.total, status="")
        return self.tasks[k]

    def planned(self, k: int, epochs: int, steps: int | None = None) -> None:
        self.epochs[k] = epochs
        if steps is not None:
            self.by_steps.add(k)
        self.bar.update(self._task(k), total=epochs if steps is None else steps,
                        status=f"epoch 0/{epochs}")

    def batch(self, k: int, done: int) -> None:
        self.bar.update(self._task(k), completed=done)

    def __call__(self, k: int, epoch: int, eps: float) -> None:
        of = f"/{self.epochs[k]}" if k in self.epochs else ""
        spent = "" if eps != eps else f", ε {eps:.3f}"  # NaN: not accounted
        update: dict = {} if k in self.by_steps else {"completed": epoch}
        self.bar.update(self._task(k), status=f"epoch {epoch}{of}{spent}", **update)


def sample(
    generators: list[Path] = typer.Argument(..., help="One or more .3dgl files (several form a Generators Pool)."),
    n: int = typer.Option(..., "-n", "--rows", help="Number of rows to sample."),
    output: Path = typer.Option(..., "-o", "--output", help="Output CSV or Parquet file."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampling."),
    unbalanced: bool = typer.Option(False, "--unbalanced", help="Follow the released class sizes instead of balancing classes."),
) -> None:
    """Sample synthetic rows from a generator or a pool of generators."""
    from threedgl.pool import GeneratorsPool
    from threedgl.schema import write_table

    with user_errors():
        if n < 1:
            fail(f"-n must be at least 1, got {n}")
        pool = GeneratorsPool.from_files(generators)
        table = pool.sample(n, balanced=not unbalanced, random_state=seed)
        write_table(table, output)
    console.print(f"wrote {len(table)} synthetic rows from {len(pool)} generator(s) to {output}")


def inspect(
    generator: Path = typer.Argument(..., help="A .3dgl file."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Show a generator's manifest and its privacy statement (reads the file safely).

    Checks the format, the weights' hash, the schema and every privacy record (ε is
    recomputed); the network's tensors are checked when the file is loaded to sample.
    """
    from threedgl.artifact import read_artifact
    from threedgl.artifact.manifest import read_manifest
    from threedgl.artifact.statement import privacy_statement
    from threedgl.errors import ArtifactError

    with user_errors():
        artifact = read_artifact(generator)
        try:
            checked = read_manifest(artifact.manifest)
        except ArtifactError as exc:
            raise ArtifactError(f"'{generator}': {exc}") from None
    m = artifact.manifest
    if as_json:
        typer.echo(json.dumps(m, indent=2, ensure_ascii=False))
        return
    console.print(
        Text.assemble((str(generator), "bold"), ": ", shown(m["generator"]), " (format ",
                      shown(m["format_version"]), ", threedgl ", shown(m["library_version"]),
                      ", created ", shown(m["created"]), ")")
    )
    schema = checked.schema
    console.print(Text(
        f"schema: {len(schema.columns)} columns, class column {shown(schema.target)}, labels "
        f"{shown(list(schema.labels))}, source {shown(schema.source)}"
    ))
    arch = {k: v for k, v in m["architecture"].items() if k != "layout"}
    console.print(Text(f"architecture: {shown(arch, 400)}"))
    console.print(Text(f"training: {shown(m['training'], 600)}"))
    console.print(Text(f"weights sha256: {shown(m['weights_sha256'])}"))
    console.print("[bold]privacy[/]")
    statement = privacy_statement(m, [c.record for c in checked.models])
    if statement.startswith("WARNING"):  # a stored statement its records do not support
        flag, _, rest = statement.partition("\n")
        console.print(Text(flag, style="bold red"), highlight=False)
        statement = rest
    console.print(Text(statement), highlight=False)


def shown(value: object, limit: int = 200) -> str:
    """A value from a file, printable: non-printable characters escaped, cut to ``limit``.

    Printed as :class:`rich.text.Text` (no markup is read), so a manifest string such as
    ``"[red]"`` or a terminal escape sequence is shown, not obeyed; the cut bounds the cost
    of a huge string.
    """
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    cut = text[: limit + 1]
    clean = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut[:limit])
    return clean + ("..." if len(cut) > limit else "")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("sample")(sample)
    app.command("inspect")(inspect)
