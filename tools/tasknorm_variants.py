"""mamlkit's TaskNorm-I against the authors' way of computing it, measured (docs/normalisation.md, checked by tests).

    python tools/tasknorm_variants.py --measure    # about 15 minutes on 2 cores (three models meta-trained)
    python tools/tasknorm_variants.py              # prints the Markdown table from the records

mamlkit's ``tasknorm_i`` learns its blending weight's ``scale`` and ``offset`` per channel and uses biased
variances; the authors' code (``cambridge-mlg/cnaps``, ``normalization_layers.py``) has one scalar pair per layer and
unbiased variances (``torch.var``): mamlkit's ``tasknorm_i_authors``. This meta-trains the authors' variant with
the three seeds, the experiment and the 600 glyph tasks of ``data/records/seeds-glyphs.json`` (whose ``norms``
section holds mamlkit's ``tasknorm_i`` on the same tasks), measures it with the query as one batch and one example
at a time, and writes ``data/records/tasknorm_variants.json``: per-task accuracies and each layer's blending weight
at 5 support examples (one number per layer in this variant).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import cell, header, load, measure_then_print, write  # noqa: E402

PROTOCOLS = ("batch", "one_at_a_time")


def alphas(model, n_support: int) -> list[float]:
    """Each TaskNorm-I layer's blending weight on the support moments, averaged over its channels."""
    from mamlkit.norms import TaskNormI

    layers = [m for m in model.modules() if isinstance(m, TaskNormI)]
    return [round(float(m.alpha(n_support).detach().mean()), 4) for m in layers]


def measure(out: Path) -> None:
    from mamlkit.experiments import Experiment, run_normalisations

    record = header("per-task accuracy (whole %) of TaskNorm-I as the authors' code computes it, and each "
                    "layer's blending weight; written by tools/tasknorm_variants.py")
    seeds_record = load("seeds-glyphs")["norms"]
    exp = Experiment()
    data = exp.load_data()
    n_support = exp.n_way * exp.k_shot
    results: dict[str, list[list[int]]] = {p: [] for p in PROTOCOLS}
    weights: list[list[float]] = []
    for seed in seeds_record["seeds"]:
        seeded = exp.with_changes(train={"seed": seed})
        run = run_normalisations(seeded, ["tasknorm_i_authors"], PROTOCOLS, progress=False, data=data)
        for p in PROTOCOLS:
            results[p].append([round(100 * v) for v in run["tasknorm_i_authors", p].values])
        weights.append(alphas(run.trained["tasknorm_i_authors"].model, n_support))
        print(f"seed {seed}: done", file=sys.stderr)
    record.update({"seeds": seeds_record["seeds"], "experiment": seeds_record["experiment"],
                   "results": {"tasknorm_i_authors": results}, "alpha_at_support_size": n_support,
                   "alpha": weights})
    write(record, out)


def table() -> str:
    """Markdown: per seed, both variants' accuracy and the paired difference, as one batch and one at a time."""
    from mamlkit.evaluate import confidence_interval

    ours, theirs = load("seeds-glyphs")["norms"], load("tasknorm_variants")
    lines = ["| query presented | seed | mamlkit's TaskNorm-I % | the authors' variant % | mamlkit's minus the "
             "authors' (points, paired) | the authors' variant: weight on the support moments, layers 1-4 |",
             "|---" * 6 + "|"]
    for protocol in PROTOCOLS:
        for s, seed in enumerate(theirs["seeds"]):
            a = ours["results"]["tasknorm_i"][protocol][s]
            b = theirs["results"]["tasknorm_i_authors"][protocol][s]
            mean, half = confidence_interval((np.array(a) - np.array(b)) / 100)
            weights = ", ".join(f"{w:.2f}" for w in theirs["alpha"][s])
            lines.append(f"| {protocol.replace('_', ' ')} | {seed} | {cell(a)} | {cell(b)} | "
                         f"{100 * mean:+.1f} ± {100 * half:.1f} | {weights} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return measure_then_print(__doc__.split("\n\n")[0], "tasknorm_variants.json", measure, table,
                              "meta-train and measure first, then print", argv)

if __name__ == "__main__":
    sys.exit(main())
