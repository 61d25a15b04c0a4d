"""The cost of ``secure_mode``: fit time with the OS CSPRNG against the seeded PRNG.

Both fits use the same table and settings; the ratio is measured in the same run.
Usage: ``python benchmarks/secure_mode.py [--datasets titanic,adult] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

from threedgl import DDPBetaVAE, datasets
from threedgl.privacy.ledger import suspended


def fit_seconds(name: str, secure: bool, seed: int) -> float:
    ds = datasets.load(name)
    gen = DDPBetaVAE(random_state=seed, secure_mode=secure)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), suspended():
        warnings.simplefilter("ignore")
        gen.fit(ds.frame, target=ds.target, schema=ds.schema)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="titanic,adult")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'dataset':<14}{'seeded (s)':>12}{'secure (s)':>12}{'ratio':>8}")
    for name in args.datasets.split(","):
        seeded = min(fit_seconds(name, False, r) for r in range(args.repeats))
        secure = min(fit_seconds(name, True, r) for r in range(args.repeats))
        print(f"{name:<14}{seeded:>12.2f}{secure:>12.2f}{secure / seeded:>8.2f}")


if __name__ == "__main__":
    main()
