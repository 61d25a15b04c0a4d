"""The privacy statement of a generator, in plain words, generated from its privacy records.

A file's manifest carries a ``privacy`` object (its overall ε and δ, what is released and
what is not covered, and the statement text), written by :func:`privacy_summary` at save.
Nothing reads that text as the truth: :func:`privacy_statement` (``3dgl inspect``, a
generator's :meth:`privacy_statement`) generates the statement again from the verified
class records, and :func:`statement_disagreement` names where a stored ``privacy`` object
claims anything else (the Global Server refuses such a file, inspect flags it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from threedgl.privacy.record import PrivacyRecord

ADJACENCY = "add/remove one row of the client's table"
COMPOSITION = "parallel composition over the disjoint class subsets: the generator is (max ε, max δ)-DP"


def privacy_summary(manifest: dict[str, Any], records: Sequence[PrivacyRecord]) -> dict[str, Any]:
    """The manifest's top-level ``privacy`` object."""
    eps = max(r.epsilon for r in records)
    delta = max(r.delta for r in records)
    schema = "the public schema (column names, bounds, categories)" + (
        " — inferred from the private data, so NOT covered by DP"
        if manifest.get("schema_source") == "data" else "")
    repeated = ("repeated training on the same data: every training spends budget again and "
                "ε adds up under composition (see `3dgl budget`)")
    if all(r.rdp_order is not None for r in records):  # DDP-βVAE's default mode
        released = [
            schema,
            "the labels of the classes modelled (a class whose noisy row count is too small is "
            "left out)",
            "each class model's noisy row count (Gaussian mechanism, part of its budget) and the "
            "sampling rate q = B / noisy count and steps derived from it; no exact class size",
            "each class model's one-way marginals over the public bins (Gaussian mechanism, "
            "part of its budget), stored as released",
        ]
        if any(r.pairs_noise_multiplier is not None for r in records):
            released.append(
                "each class model's two-way marginals of the feature pairs its DP-Adam decoder "
                "finds most dependent (a spanning tree; bins grouped by the noisy one-way "
                "counts), Gaussian mechanism, part of its budget, stored as released")
        released.append(
            "the decoders' weights: output layer set from the DP one-way marginals, trained "
            "with DP-Adam (the rest of the budget), then fitted to the measurements above "
            "with a prior of weighted latent points (post-processing)")
        not_covered = ["a schema inferred from the private data (declare it in public instead)",
                       repeated]
    elif manifest.get("generator") == "dp-marginals":
        released = [
            schema,
            "the labels of the classes that have rows",
            "each class's noisy row count (the mean total of its noisy histograms)",
            "per-class one-way histograms (Gaussian mechanism)",
        ]
        not_covered = [
            "a schema inferred from the private data (declare it in public instead)",
            repeated,
            "which class labels have at least one row (a class without rows is left out)",
        ]
    else:  # DDP-βVAE's paper mode
        released = [
            schema,
            "the class labels",
            "each class model's sampling rate q = B / n_class and its row count n_class "
            "(class sizes)",
            "the decoders' weights (trained with DP)",
        ]
        not_covered = [
            "a schema inferred from the private data (declare it in public instead)",
            repeated,
            "the class sizes, released exactly through the sampling rates",
        ]
    summary: dict[str, Any] = {
        "epsilon": "inf" if math.isinf(eps) else eps,
        "delta": delta,
        "accountant": records[0].accountant,
        "adjacency": ADJACENCY,
        "composition": COMPOSITION,
        "released": released,
        "not_covered": not_covered,
        "private": not math.isinf(eps),
    }
    summary["statement"] = _statement_text(summary)
    return summary


#: The stored ``privacy`` fields that must equal the generated ones (the prose lists may be
#: worded differently by another version; they are never shown from the file).
CLAIMS = ("epsilon", "delta", "accountant", "adjacency", "composition", "private")


def statement_disagreement(manifest: dict[str, Any], records: Sequence[PrivacyRecord]
                           ) -> str | None:
    """Where the manifest's stored ``privacy`` object disagrees with what its (verified)
    records support, in words; None when it agrees.

    Its claims (:data:`CLAIMS`) must equal the generated ones, and its statement text must
    make the generated claim: the same (ε, δ) sentence, or the same "without DP" sentence.
    """
    stored = manifest.get("privacy")
    if not isinstance(stored, dict):
        return "the manifest's 'privacy' field is not a JSON object"
    expected = privacy_summary(manifest, records)
    for key in CLAIMS:
        if stored.get(key) != expected[key]:
            return (f"the stored privacy {key!r} is {_short(stored.get(key))}, but the privacy "
                    f"records give {_short(expected[key])}")
    text = stored.get("statement")
    claim = _claim(expected)
    if not isinstance(text, str) or claim not in text:
        return (f"the stored statement {_short(text)} does not make the claim its privacy "
                f"records support: {claim!r}")
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _claim(summary: dict[str, Any]) -> str:
    """The statement's first sentence: what it claims."""
    return _statement_text(summary).split(". ")[0] + "."


def _statement_text(summary: dict[str, Any]) -> str:
    if not summary["private"]:
        return (
            "This generator was trained WITHOUT differential privacy (epsilon = inf). It may "
            "memorise and reveal rows of its training table. Do not share it."
        )
    return (
        f"Each row of the training table is protected with ({summary['epsilon']:.3g}, "
        f"{summary['delta']:.3g})-differential privacy under {summary['adjacency']} "
        f"({summary['accountant'].upper()} accountant; {summary['composition']}). "
        "Released besides the DP decoders: " + "; ".join(summary["released"][:-1]) + ". "
        "Not covered: " + "; ".join(summary["not_covered"]) + "."
    )


def privacy_statement(manifest: dict[str, Any], records: Sequence[PrivacyRecord]) -> str:
    """A multi-line statement for ``3dgl inspect`` and the README, generated from the
    verified ``records`` (never the file's stored text); a stored statement that disagrees
    is flagged on the first line."""
    lines = []
    problem = statement_disagreement(manifest, records)
    if problem is not None:
        lines.append(f"WARNING: this file's stored privacy statement is not what its privacy "
                     f"records support ({problem}); the statement below is generated from "
                     "the records.")
    lines.append(privacy_summary(manifest, records)["statement"])
    lines.append("Per class model (recomputable from σ, q, steps and δ):")
    for m in manifest["models"]:
        r = m["privacy"]
        label = m.get("label")
        lines.append(
            f"  class {label!r}: noise_multiplier={r['noise_multiplier']:.4g} "
            f"sample_rate={r['sample_rate']:.4g} steps={r['steps']} "
            f"max_grad_norm={r['max_grad_norm']} ε={r['epsilon'] if isinstance(r['epsilon'], str) else format(r['epsilon'], '.4g')} "
            f"δ={r['delta']:.3g} ({r['accountant']})"
        )
        if "rdp_order" in r:
            pairs = r.get("pairs_noise_multiplier")
            lines.append(
                f"    composed at Rényi order {r['rdp_order']:g}: noisy row count "
                f"(noise_multiplier={r['count_noise_multiplier']:.4g}), one-way marginals "
                f"(noise_multiplier={r['marginals_noise_multiplier']:.4g}), then DP-Adam"
                + ("" if pairs is None else
                   f", then two-way marginals (noise_multiplier={pairs:.4g})")
                + f"; noisy rows {m.get('rows')!r}"
            )
            listed = m.get("measurements")
            if isinstance(listed, list) and listed:
                lines.append("    measurements stored: " + _measurements_line(listed))
    return "\n".join(lines)


def _measurements_line(listed: list[Any]) -> str:
    """``the row count, 7 one-way and 6 two-way marginals (age×fare, …)``."""
    sizes: dict[int, list[str]] = {}
    for e in listed:
        feats = e.get("features") if isinstance(e, dict) else None
        feats = feats if isinstance(feats, list) else []
        sizes.setdefault(len(feats), []).append("×".join(map(str, feats)))
    parts = ["the row count"] if 0 in sizes else []
    parts += [f"{len(sizes[k])} {name} marginal(s)" for k, name in ((1, "one-way"), (2, "two-way"))
              if k in sizes]
    pairs = sizes.get(2, [])
    shown = ", ".join(pairs[:4]) + (", …" if len(pairs) > 4 else "")
    return ", ".join(parts) + (f" ({shown})" if pairs else "")
