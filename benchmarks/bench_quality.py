"""Quality control: label-error detection, consensus accuracy, agreement and consensus speed.

    .venv/bin/python benchmarks/bench_quality.py [--part errors|consensus|time|all] [--quick]
        [--workspace DIR] [--seeds 3] [--rounds 7] [--items 50000]
        [--sets animals,digits] [--kinds symmetric,class-conditional]

1. Label errors (``--part errors``). 10 % of each class's labels are replaced, either by a
   uniformly random other class (symmetric) or all by one fixed other class, the next one in the
   class order (class-conditional: bear->bird, ..., zebra->bear; 0->1, ..., 9->0). The truth is
   the set of replaced labels; the unchanged labels are the dataset's shipped ones. Two sets: the
   animals sample (10 x 1,000 silhouettes, 28 px) and scikit-learn's ``load_digits`` (1,797 x
   8 px), the second never used to choose any setting. Compared, on the same images and the
   same noisy labels:

   - the baseline most users would write: raw pixels (grey levels / 255), out-of-fold
     probabilities from ``cross_val_predict(LogisticRegression(max_iter=1000), pixels, noisy,
     method="predict_proba")`` (scikit-learn's default 5 stratified folds) and
     ``cleanlab.filter.find_label_issues(noisy, probs)`` at cleanlab's defaults;
   - ours: ``workbench.quality.label_errors.find_label_errors`` at its defaults on ``Embedder()``
     vectors (mobilenet_v2 at its default, native 224 px input), folds split by exact-duplicate
     group (same content hash). Its default model is a standardised logistic regression whose C
     ``choose_regularization`` picks per run from the noisy labels alone (lowest out-of-fold
     log-loss, never the truth); the C chosen is printed per run. The C grid, its start and the
     flagging rule (cleanlab's default) were looked at on animals only; digits confirms.

   Printed: precision, recall and F1 of the flagged samples against the replaced ones, mean and
   spread (min-max) over noise seeds. Target: F1 >= 0.85 on animals, clearly above the baseline
   on both sets.

2. Consensus (``--part consensus``). Simulated annotators label the animals items (true class =
   the shipped label) through stated confusion matrices: a pool of 3 (each labels every item), a
   pool of 5 (3 of them per item), and two crowds of 300 annotators with 30-300 labels each
   (log-uniform), 3 distinct annotators per item. Accuracy against the truth of majority vote,
   Dawid-Skene (full and one-coin), CROWDLAB with the out-of-fold probabilities of part 1 as the
   model (ours, trained on the labels with 10 % symmetric noise), and the default
   ``consensus()`` with and without those probabilities (with them: Dawid-Skene with the model
   as one more annotator). Tied items (no label) count as wrong. Mean and min over seeds. The
   simulations that chose Dawid-Skene's default prior used seeds 0-2, those that chose the rule
   with a model seed 0 (with models from 10 % class-conditional noise, and over-fitted ones);
   these use seeds from 1000 on. Target: the default >= majority vote in every setting.

3. Time (``--part time``): votes table -> ``Votes``, every agreement figure, and consensus, for
   50,000 items x 3 labels (10 classes, 300 annotators), in a child process with one thread for
   BLAS and OpenMP; ``--rounds`` (7) interleaved rounds after one warm-up, median and min-max.
   Target: agreement + default consensus < 5 s.

The machine load is printed before and after each part. ``--quick`` runs small sizes and one
seed (a check that everything runs; its figures are not results).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

RATE = 0.10  # injected label noise, per class
K_TIME = 10  # classes in the timing part
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # fmt: skip


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on "
        f"{os.cpu_count()} cores"
    )


# ------------------------------------------------------------------------------------------------
# data: images, shipped labels, pixels, embeddings, content hashes
# ------------------------------------------------------------------------------------------------
def load_set(name: str, ws, per_class: int | None) -> dict[str, object]:
    """One sample set: ids, class codes, class names, pixels / 255, embeddings, hashes."""
    from PIL import Image

    from workbench import samples
    from workbench.embed import Embedder

    cat = samples.load(name, ws, progress=False)
    df = cat.df[cat.df["status"] == "ok"]
    if per_class is not None:  # --quick: the first per_class of each class (files are sorted)
        df = df.groupby("label", sort=False).head(per_class)
    classes = sorted(df["label"].astype(str).unique())
    y = pd.Index(classes).get_indexer(df["label"].astype(str))
    pixels = np.stack(
        [np.asarray(Image.open(p).convert("L"), np.float64).ravel() / 255.0 for p in df["path"]]
    )
    emb = Embedder()
    X = emb.embed(cat, ids=df["id"].tolist(), cache=ws, progress=False)
    s = emb.stats_
    how = (f"embedded {s['computed']:,} in {s['seconds']:.0f} s" if s.get("computed")
           else "embeddings from the workspace cache")  # fmt: skip
    hashes = df["hash"].astype(str).to_numpy()
    print(f"{name}: {len(df):,} images, {len(classes)} classes, {pixels.shape[1]} pixels; {how}")
    return {"name": name, "ids": df["id"].tolist(), "y": y, "classes": classes,
            "pixels": pixels, "X": X, "hashes": hashes}  # fmt: skip


def duplicate_note(data: dict[str, object]) -> str:
    """How many exact duplicates the set holds and whether their shipped labels agree."""
    h = pd.Series(data["hashes"])
    y = np.asarray(data["y"])
    sizes = h.map(h.value_counts())
    in_groups = int((sizes > 1).sum())
    extra = len(h) - h.nunique()
    conflict = pd.Series(y).groupby(h.to_numpy()).nunique()
    return (
        f"{data['name']}: {extra} exact duplicates (same content hash) beyond the first copy, "
        f"{in_groups} samples in {int((h.value_counts() > 1).sum())} groups, "
        f"{int((conflict > 1).sum())} groups whose shipped labels differ"
    )


# ------------------------------------------------------------------------------------------------
# 1. label errors
# ------------------------------------------------------------------------------------------------
def inject(
    y: np.ndarray, k: int, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy labels and the mask of replaced ones: ``RATE`` of each class, replaced."""
    noisy = y.copy()
    for c in range(k):
        members = np.flatnonzero(y == c)
        pick = rng.choice(members, round(RATE * len(members)), replace=False)
        if kind == "symmetric":
            noisy[pick] = (c + rng.integers(1, k, len(pick))) % k
        else:  # class-conditional: every error of class c goes to the next class
            noisy[pick] = (c + 1) % k
    return noisy, noisy != y


def prf(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flagged & truth).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def baseline_flags(pixels: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Raw-pixel logistic regression, sklearn's default folds, cleanlab at its defaults."""
    from cleanlab.filter import find_label_issues
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probs = cross_val_predict(
            LogisticRegression(max_iter=1000), pixels, noisy, method="predict_proba"
        )
    return np.asarray(find_label_issues(noisy, probs), dtype=bool)


def ours_flags(data: dict[str, object], noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ours: flags and the out-of-fold probabilities (columns in class-code order)."""
    from workbench.quality.label_errors import find_label_errors

    classes = np.asarray(data["classes"], dtype=object)
    report = find_label_errors(data["X"], classes[noisy], ids=data["ids"], hashes=data["hashes"])
    probs = np.zeros((len(noisy), len(classes)))
    probs[:, pd.Index(classes).get_indexer(report.classes)] = report.probs
    data.setdefault("C", []).append(report.C)
    return report.table["found"].to_numpy(dtype=bool), probs


def label_errors(args: argparse.Namespace, sets: dict[str, dict[str, object]]) -> None:
    print(f"\n== 1. Label-error detection, {RATE:.0%} injected noise per class; {load_line()}")
    for data in sets.values():
        print(duplicate_note(data))
    print(
        "Duplicates: ours puts each exact-duplicate group in one fold (hashes=...), so a twin in "
        "the training folds never vouches for a sample; the baseline uses sklearn's default "
        "folds, which may split twins (to its advantage when one twin keeps the true label). "
        "Every sample is scored, twins included.\n"
    )
    rows = []
    for name, data in sets.items():
        y, k = np.asarray(data["y"]), len(data["classes"])
        for kind in args.kinds:
            res: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "ours": []}
            secs = {"baseline": 0.0, "ours": 0.0}
            for seed in range(args.seeds):
                noisy, truth = inject(y, k, kind, np.random.default_rng(seed))
                for who in ("baseline", "ours"):
                    t = time.perf_counter()
                    if who == "baseline":
                        flags = baseline_flags(data["pixels"], noisy)
                    else:
                        flags, probs = ours_flags(data, noisy)
                        if kind == "symmetric":  # kept as the model of part 2 (CROWDLAB)
                            data.setdefault("model", {})[seed] = probs
                    res[who].append(prf(flags, truth))
                    secs[who] += time.perf_counter() - t
                    c = f", C={data['C'][-1]:g}" if who == "ours" else ""
                    print(f"   {name} {kind} seed {seed} {who}: F1 {res[who][-1][2]:.3f} "
                          f"({time.perf_counter() - t:.0f} s{c})", flush=True)  # fmt: skip
            for who, runs in res.items():
                a = np.array(runs)
                rows.append((name, kind, who, a, secs[who] / args.seeds))
        print(f"   done {name} ({load_line()})", flush=True)
    method = {
        "baseline": "cleanlab, raw-pixel LogisticRegression(max_iter=1000)",
        "ours": "find_label_errors, Embedder() 224 px, C by log-loss",
    }
    head = (f"{'set':<9}{'noise':<19}{'method':<56}{'precision':>21}{'recall':>21}{'F1':>21}"
            f"{'s/run':>7}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for name, kind, who, a, sec in rows:
        cells = "".join(
            f"{a[:, j].mean():.3f} [{a[:, j].min():.3f}-{a[:, j].max():.3f}]".rjust(21)
            for j in range(3)
        )
        print(f"{name:<9}{kind:<19}{method[who]:<56}{cells}{sec:>7.0f}")
    print(
        f"mean [min-max] over {args.seeds} noise seed(s) (seeds 0..{args.seeds - 1}); flagged = "
        "cleanlab's find_label_issues (filter_by='prune_by_noise_rate', its default, for both). "
        "Genuine errors in the shipped labels, if any, count against both as false positives."
    )
    summary = []
    for name in sets:
        for kind in args.kinds:
            f = {w: a[:, 2].mean() for n, kd, w, a, _ in rows if n == name and kd == kind}
            goal = " (target >= 0.85: " + ("met)" if f["ours"] >= 0.85 else "NOT met)")
            summary.append(f"{name} {kind}: F1 ours {f['ours']:.3f} vs baseline "
                           f"{f['baseline']:.3f} ({f['ours'] - f['baseline']:+.3f})"
                           f"{goal if name == 'animals' else ''}")  # fmt: skip
    print("\n".join(summary))


# ------------------------------------------------------------------------------------------------
# 2. consensus
# ------------------------------------------------------------------------------------------------
def even(k: int, acc: float) -> np.ndarray:
    """Right with probability ``acc``; errors spread evenly over the other classes."""
    c = np.full((k, k), (1 - acc) / (k - 1))
    np.fill_diagonal(c, acc)
    return c


def careless(k: int, rate: float = 0.2) -> np.ndarray:
    """A uniformly random answer ``rate`` of the time, else right."""
    return np.full((k, k), rate / k) + np.eye(k) * (1 - rate)


def biased(k: int, pairs: list[tuple[int, int]], share: float = 0.45) -> np.ndarray:
    """95 % right (errors even), but gives class b for class a ``share`` of the time."""
    c = even(k, 0.95)
    for a, b in pairs:
        c[a, a] -= share
        c[a, b] += share
    return c


def confuser(k: int, acc: float) -> np.ndarray:
    """Right with probability ``acc``; every error goes to the next class."""
    c = np.eye(k) * acc
    c[np.arange(k), (np.arange(k) + 1) % k] += 1 - acc
    return c


def spammer(k: int) -> np.ndarray:
    return np.full((k, k), 1.0 / k)


def crowd_sizes(m: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` label counts in 30..300 (log-uniform), adjusted one by one to sum to ``total``."""
    per = np.round(np.exp(rng.uniform(np.log(30), np.log(300), m))).astype(int)
    while per.sum() != total:
        step = 1 if per.sum() < total else -1
        ok = np.flatnonzero((per + step >= 30) & (per + step <= 300))
        n = min(abs(total - per.sum()), len(ok))
        per[rng.choice(ok, n, replace=False)] += step
    return per


def distinct_triples(slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle annotator slots into rows of 3 with no annotator twice in a row."""
    a = rng.permutation(slots).reshape(-1, 3)
    for _ in range(1000):
        bad = np.flatnonzero((a[:, 0] == a[:, 1]) | (a[:, 0] == a[:, 2]) | (a[:, 1] == a[:, 2]))
        if len(bad) == 0:
            return a
        other = rng.integers(0, len(a), len(bad))
        col = rng.integers(0, 3, len(bad))
        for i, j, c in zip(bad, other, col, strict=True):  # swap one slot with a random row
            a[i, c], a[j, c] = a[j, c], a[i, c]
    raise RuntimeError("could not spread the crowd's labels over distinct annotators")


SETTINGS = {
    "pool of 3": "careful (95 % right, errors even); careless (20 % uniformly random answers); "
    "biased (95 % right, but cat->dog and horse->zebra 45 % of the time); each labels every item",
    "pool of 5": "90 %, 75 %, 60 % right (errors even); a confuser 70 % right, every error to the "
    "next class; a spammer (uniform answers); 3 of the 5 at random per item",
    "crowd, even errors": "{m} annotators, 30-300 labels each, 3 per item: 90 % right with "
    "probability U(0.55, 0.95) (errors even), 10 % spammers",
    "crowd, confusers": "the same crowd, but 60 % even errors, 30 % confusers (every error to the "
    "next class), 10 % spammers; accuracies U(0.55, 0.95)",
}


def simulate(setting: str, truth: np.ndarray, k: int, classes: list[str],
             rng: np.random.Generator, crowd: int = 300) -> pd.DataFrame:  # fmt: skip
    """The long votes table (id, annotator, value) of one simulated setting.

    A crowd has ``crowd`` annotators; ``3 * len(truth)`` labels must fit 30-300 each.
    """
    n = len(truth)
    if setting == "pool of 3":
        pos = {c: i for i, c in enumerate(classes)}
        pairs = [(pos["cat"], pos["dog"]), (pos["horse"], pos["zebra"])] if "cat" in pos else [
            (2, 3), (6, 7)]  # fmt: skip
        confs = [even(k, 0.95), careless(k), biased(k, pairs)]
        names = ["careful", "careless", "biased"]
        assign = np.tile(np.arange(3), (n, 1))
    elif setting == "pool of 5":
        confs = [even(k, 0.9), even(k, 0.75), even(k, 0.6), confuser(k, 0.7), spammer(k)]
        names = ["right90", "right75", "right60", "confuser70", "spammer"]
        assign = np.argsort(rng.random((n, 5)), axis=1)[:, :3]
    else:
        m = crowd
        p = [0.9, 0.0, 0.1] if setting == "crowd, even errors" else [0.6, 0.3, 0.1]
        kinds = rng.choice(3, m, p=p)
        accs = rng.uniform(0.55, 0.95, m)
        confs = [even(k, a) if t == 0 else confuser(k, a) if t == 1 else spammer(k)
                 for t, a in zip(kinds, accs, strict=True)]  # fmt: skip
        names = [f"crowd{i:03d}" for i in range(m)]
        assign = distinct_triples(np.repeat(np.arange(m), crowd_sizes(m, 3 * n, rng)), rng)
    cum = np.cumsum(np.stack(confs), axis=2)  # (annotators, true, given)
    item = np.repeat(np.arange(n), 3)
    ann = assign.ravel()
    u = rng.random(len(item))
    given = (u[:, None] > cum[ann, truth[item]]).sum(axis=1).clip(max=k - 1)
    return pd.DataFrame({"id": item, "annotator": np.asarray(names)[ann], "value": given})


def consensus_accuracy(args: argparse.Namespace, animals: dict[str, object]) -> None:
    from workbench.quality import consensus as cs
    from workbench.quality._votes import Votes

    print(f"\n== 2. Consensus accuracy against the truth; {load_line()}")
    truth = np.asarray(animals["y"])
    k, classes = len(animals["classes"]), list(animals["classes"])
    seeds = [1000 + s for s in range(args.seeds)]
    print(f"items: the {len(truth):,} animals images, true class = the shipped label; crowds of "
          f"{args.crowd} annotators; "
          f"seeds {seeds} (fresh: the prior was chosen on seeds 0-2)")  # fmt: skip
    for setting, text in SETTINGS.items():
        print(f"  {setting}: {text.format(m=args.crowd)}")
    cols = ["majority", "majority+model", "dawid_skene", "one_coin", "auto (no model)",
            "crowdlab", "auto (model)", "model alone"]  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    methods_used: dict[str, set[str]] = {}
    t0 = time.perf_counter()
    for setting in SETTINGS:
        res = results.setdefault(setting, {c: [] for c in cols})
        for seed in seeds:
            rng = np.random.default_rng(seed)
            votes = Votes.from_frame(simulate(setting, truth, k, classes, rng, args.crowd),
                                     classes=list(range(k)))  # fmt: skip
            order = votes.items.astype(np.int64)
            true = truth[order]
            probs = model_probs(animals, seed - 1000)[order]

            def acc(table: pd.DataFrame, true: np.ndarray = true) -> float:
                lab = pd.to_numeric(table["label"], errors="coerce").to_numpy()
                return float(np.mean(lab == true))  # NaN (tied) never equals

            auto_nm = cs.consensus(votes)
            auto_m = cs.consensus(votes, pred_probs=probs)
            methods_used.setdefault("no model", set()).update(auto_nm["method"].unique())
            methods_used.setdefault("model", set()).update(auto_m["method"].unique())
            res["majority"].append(acc(cs.majority_vote(votes)))
            res["majority+model"].append(acc(cs.majority_vote(votes, pred_probs=probs)))
            res["dawid_skene"].append(acc(cs.dawid_skene(votes)))
            res["one_coin"].append(acc(cs.dawid_skene(votes, one_coin=True)))
            res["auto (no model)"].append(acc(auto_nm))
            res["crowdlab"].append(acc(cs.crowdlab(votes, probs)))
            res["auto (model)"].append(acc(auto_m))
            res["model alone"].append(float(np.mean(probs.argmax(axis=1) == true)))
        print(f"   done {setting} ({time.perf_counter() - t0:.0f} s; {load_line()})", flush=True)
    head = f"{'setting':<20}" + "".join(f"{c:>17}" for c in cols)
    print(head)
    print("-" * len(head))
    for setting, res in results.items():
        print(
            f"{setting:<20}"
            + "".join(f"{np.mean(v):.4f} ({np.min(v):.4f})".rjust(17) for v in res.values())
        )
    print(
        f"mean (min) accuracy over {len(seeds)} seed(s); tied items count as wrong. auto (no "
        f"model) ran {sorted(methods_used['no model'])}; auto (model) ran "
        f"{sorted(methods_used['model'])}. majority+model breaks ties with the model. The model "
        "(model alone: its arg-max) is ours, out of fold, from part 1: trained on the shipped "
        "labels with 10 % symmetric noise (noise seed = seed - 1000), so its errors are "
        "independent of the simulated annotators'."
    )
    for setting, res in results.items():
        for auto, maj in (("auto (no model)", "majority"), ("auto (model)", "majority+model")):
            d = np.array(res[auto]) - np.array(res[maj])
            print(f"{setting}: {auto} - {maj}: mean {d.mean():+.4f}, min over seeds "
                  f"{d.min():+.4f} -> {'met' if d.min() >= 0 else 'NOT met'}")  # fmt: skip


def model_probs(animals: dict[str, object], seed: int) -> np.ndarray:
    """The model of part 2: ours out of fold on the labels with symmetric noise of seed ``seed``.

    Part 1 computed it already (the same call); computed here when part 1 did not run.
    """
    kept = animals.setdefault("model", {})
    if seed not in kept:
        y = np.asarray(animals["y"])
        noisy, _ = inject(y, len(animals["classes"]), "symmetric", np.random.default_rng(seed))
        kept[seed] = ours_flags(animals, noisy)[1]
    return kept[seed]


# ------------------------------------------------------------------------------------------------
# 3. time (child process, one thread)
# ------------------------------------------------------------------------------------------------
def timing_child(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from workbench.quality import agreement as ag
    from workbench.quality import consensus as cs
    from workbench.quality._votes import Votes

    threadpool_limits(1)
    pools = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info())
    n, m, k = args.items, 300, K_TIME
    rng = np.random.default_rng(0)
    truth = rng.integers(0, k, n)
    ann = distinct_triples(np.resize(np.arange(m), 3 * n), rng)
    given = np.where(rng.random((n, 3)) < 0.8, truth[:, None], rng.integers(0, k, (n, 3)))
    ids = np.array([f"animals/img_{i:06d}.png" for i in range(n)], dtype=object)
    frame = pd.DataFrame({
        "id": np.repeat(ids, 3), "annotator": [f"annotator{a:03d}" for a in ann.ravel()],
        "value": [f"class{v}" for v in given.ravel()], "round": 0,
        "event": np.arange(3 * n),
    })  # fmt: skip
    names = [f"class{c}" for c in range(k)]
    gold = dict(zip(ids[: n // 20], [names[t] for t in truth[: n // 20]], strict=True))  # 5 %
    state: dict[str, object] = {}

    def build() -> None:
        state["v"] = Votes.from_frame(frame, classes=names)

    def agreement() -> None:
        v = state["v"]
        ag.pairwise(v)
        ag.percent_agreement(v)
        ag.fleiss_kappa(v)
        ag.krippendorff_alpha(v)
        ag.summary(v)
        ag.accuracy(v, gold)

    def default() -> None:
        state["c"] = cs.consensus(state["v"])

    def vs_consensus() -> None:
        ag.accuracy(state["v"], state["c"])

    steps: list[tuple[str, Callable[[], None]]] = [
        (f"Votes.from_frame ({3 * n:,} rows)", build),
        (
            "agreement: pairwise kappa x3, percent, Fleiss, alpha, summary, accuracy vs gold",
            agreement,
        ),
        ("consensus() default (Dawid-Skene)", default),
        ("accuracy vs consensus", vs_consensus),
        ("majority_vote", lambda: cs.majority_vote(state["v"])),
        ("dawid_skene(one_coin=True)", lambda: cs.dawid_skene(state["v"], one_coin=True)),
    ]
    print(f"{n:,} items x 3 labels, {m} annotators, {k} classes; threads: {pools}; "
          f"{load_line()}")  # fmt: skip
    times: dict[str, list[float]] = {s: [] for s, _ in steps}
    for r in range(args.rounds + 1):  # round 0 warms up (imports, first allocations)
        for name, fn in steps:
            t = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - t)
    target = [steps[0][0], steps[1][0], "consensus() default (Dawid-Skene)",
              "accuracy vs consensus"]  # fmt: skip
    totals = np.sum([times[s] for s in target], axis=0)
    head = f"{'step':<84}{'median s':>10}{'min-max s':>16}"
    print(head)
    print("-" * len(head))
    for name, ts in [*times.items(), ("total: the first four (agreement + default consensus)",
                                      list(totals))]:  # fmt: skip
        print(f"{name:<84}{np.median(ts):>10.3f}{f'{min(ts):.3f}-{max(ts):.3f}':>16}")
    print(f"{args.rounds} interleaved rounds after a warm-up; target: total < 5 s -> "
          f"{'met' if np.median(totals) < 5 else 'NOT met'} (median {np.median(totals):.2f} s); "
          f"{load_line()}")  # fmt: skip


def timing(args: argparse.Namespace) -> None:
    print(f"\n== 3. Time, one thread (child process); {load_line()}", flush=True)
    env = dict(os.environ, **dict.fromkeys(THREAD_VARS, "1"))
    cmd = [sys.executable, __file__, "--part", "time-child", "--items", str(args.items),
           "--rounds", str(args.rounds)]  # fmt: skip
    subprocess.run(cmd, env=env, check=True)


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["errors", "consensus", "time", "all", "time-child"],
                    default="all")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="small sizes, one seed: a check")
    ap.add_argument("--workspace", default=None, help="reuse this workspace (keeps embeddings)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--items", type=int, default=50_000, help="time: items (3 labels each)")
    ap.add_argument("--sets", default="animals,digits", help="errors: which sets (comma-separated)")
    ap.add_argument("--kinds", default="symmetric,class-conditional",
                    help="errors: which noise kinds (comma-separated)")  # fmt: skip
    args = ap.parse_args(argv)
    args.sets, args.kinds = args.sets.split(","), args.kinds.split(",")
    if args.part == "time-child":
        timing_child(args)
        return
    if args.quick:
        args.seeds, args.items = 1, 5_000
    args.crowd = 30 if args.quick else 300  # --quick: 1,000 items, 30 annotators
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread for every side: on a shared 2-core machine more threads than free
    # cores only adds contention, and both methods get the same treatment.
    threadpool_limits(1)
    print(f"python {sys.version.split()[0]}; one BLAS/OpenMP thread; {load_line()}")
    parts = ["errors", "consensus", "time"] if args.part == "all" else [args.part]
    sets: dict[str, dict[str, object]] = {}
    if "errors" in parts or "consensus" in parts:
        from workbench import Workspace

        tmp = None
        if args.workspace is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-quality-")
        ws = Workspace(Path(args.workspace or tmp.name))
        try:
            if "consensus" in parts or "animals" in args.sets:
                sets["animals"] = load_set("animals", ws, 100 if args.quick else None)
            if "errors" in parts:
                if "digits" in args.sets:
                    sets["digits"] = load_set("digits", ws, 60 if args.quick else None)
                label_errors(args, {n: d for n, d in sets.items() if n in args.sets})
            if "consensus" in parts:
                consensus_accuracy(args, sets["animals"])
        finally:
            if tmp is not None:
                tmp.cleanup()
    if "time" in parts:
        timing(args)
    print(f"\nend; {load_line()}")


if __name__ == "__main__":
    main()
