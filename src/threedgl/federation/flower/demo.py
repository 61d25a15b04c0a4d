"""Files for a deployment demo: one CSV per SuperNode, the external test CSV and the schema.

    python -m threedgl.federation.flower.demo DIR [--dataset titanic] [--clients 3]
        [--split stratified] [--seed 0]

writes ``DIR/client-0.csv`` … (disjoint client folds, split as the simulation splits the
bundled table: :func:`threedgl.federation.plan.split_for_seed`), ``DIR/test.csv`` (the
external data) and ``DIR/schema.json`` (the federation's public schema). Each SuperNode
then reads only its own file (``--node-config "data-path='DIR/client-0.csv' ..."``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from threedgl.federation.plan import resolve_data, split_for_seed
from threedgl.federation.splits import parse_split
from threedgl.schema.io import atomic_write_text


def write_demo(out: Path, dataset: str, clients: int, split: str, seed: int) -> list[Path]:
    """Write the demo's files; their paths (client CSVs, test CSV, schema)."""
    _, frame, schema, _, _ = resolve_data(dataset, None, None, None, None)
    parts = split_for_seed(frame, schema, clients, parse_split(split), seed, 0, test_size=0.1,
                           min_rows=10)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for c, fold in enumerate(parts.folds):
        paths.append(out / f"client-{c}.csv")
        atomic_write_text(paths[-1], fold.to_csv(index=False))
    paths.append(out / "test.csv")
    atomic_write_text(paths[-1], parts.test.to_csv(index=False))
    paths.append(out / "schema.json")
    atomic_write_text(paths[-1], json.dumps(schema.to_dict(), indent=2))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dataset", default="titanic")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--split", default="stratified")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_demo(args.out, args.dataset, args.clients, args.split, args.seed):
        print(path)


if __name__ == "__main__":
    main()
