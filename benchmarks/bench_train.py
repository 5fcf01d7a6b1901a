"""Training benchmarks.

    .venv/bin/python benchmarks/bench_train.py [--section pipeline] [--rounds 7] [--workers 2]
    .venv/bin/python benchmarks/bench_train.py --section finetune [--threads 2] [--holdout]
    .venv/bin/python benchmarks/bench_train.py --section datacentric --workspace WS

Sections (``--section``; more can be registered in ``SECTIONS``):

``pipeline``
    Images per second the training input pipeline delivers: our ``TrainingData`` (the catalog's
    ``CatalogDataset`` with safe decoding, per-sample seeded augmentation draws, the saved
    augmentation pipeline, resize and normaliser; ``EpochBatches`` order) against a bare
    torchvision ``ImageFolder`` + ``v2.Compose`` of the same transforms in a ``DataLoader``
    (shuffled, torchvision's default PIL loader), on the same files (the training side of the
    animals sample written as an ImageFolder tree), the same batch size and the same workers.
    No model runs: batches are drawn and dropped. Rounds interleave the two (their order flips
    each round); one epoch each per round; median, spread and machine load are printed.
    Target: our median >= 0.9x the peer's. Then the CPU time per item of both datasets in one
    process (one thread, interleaved rounds), which a busy machine disturbs far less than the
    wall clock of worker processes.

``finetune``
    MobileNetV2 fine-tuned on the animals sample (10,000 silhouettes, their true classes), on the
    workspace's grouped split (stratified, exact and near duplicates on one side; the near
    duplicates come from the cleaning checks), CPU only: the validation accuracy of the best
    epoch (lowest validation loss) and the wall time of the run (network build, training,
    validation), pretrained from the ImageNet weights and, beside it, from scratch with the same
    schedule. Target: pretrained >= 0.92 within 10 minutes of wall time on 2 cores. Settings are
    chosen with ``--holdout``: the training side is split again (grouped, stratified) and the
    accuracy reported is on that inner part, never on the validation side.

``datacentric``
    Notebook 06's comparison at its full schedule on a workspace notebooks 01-05 filled
    (``--workspace``, e.g. ``data/run-*/workspace`` of ``make run``): labels as collected from
    the simulated annotators, after consensus and review, plus the tuned augmentation; each
    pretrained and from scratch, for ``--seeds`` seeds; validation accuracy against the true
    classes, mean and spread per condition.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench import samples
from workbench.augment import Pipeline
from workbench.catalog import Catalog
from workbench.normalize import Normalizer
from workbench.train import TrainConfig, TrainingData
from workbench.workspace import Workspace


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def augmentation() -> Pipeline:
    """A typical pipeline for the silhouettes: flip, small rotation, brightness/contrast,
    occasional erasing."""
    return (
        Pipeline()
        .add("RandomHorizontalFlip")
        .add("RandomRotation", degrees=15)
        .add("ColorJitter", brightness=0.3, contrast=0.3)
        .add("RandomErasing", p=0.25)
    )


# ------------------------------------------------------------------------------ pipeline
def _drain(loader: torch.utils.data.DataLoader) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += len(x)
    return n, time.perf_counter() - t0


def bench_pipeline(args: argparse.Namespace) -> None:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-train-"))
    ws = Workspace(tmp / "ws")
    root = samples.materialize("animals", ws, progress=False)  # animals/<class>/<file>.png
    cat = ws.attach(Catalog.from_folder(root, progress=False))
    ws.save_catalog(cat)
    labels = cat.df.set_index("id")["label"].astype(object)
    if args.limit:  # the same stratified subset on both sides (a shorter round)
        labels = labels.groupby(labels, group_keys=False).apply(
            lambda s: s.iloc[: args.limit // labels.nunique()]
        )
    cfg = TrainConfig(image_size=args.image_size, batch_size=args.batch_size,
                      workers=args.workers, seed=0)  # fmt: skip
    norm = Normalizer().fit(cat, progress=False)
    pipe = augmentation()
    data = TrainingData.from_workspace(ws, labels=labels, config=cfg, pipeline=pipe,
                                       normalizer=norm)  # fmt: skip
    train = set(data.train_ids)
    # The peer: the same files (the training side), torchvision's defaults everywhere else.
    peer_tf = v2.Compose([
        v2.ToImage(), pipe.to_torchvision(), v2.Resize((cfg.image_size, cfg.image_size)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=[float(m) for m in data.mean], std=[float(s) for s in data.std]),
    ])  # fmt: skip
    folder = ImageFolder(
        str(root), transform=peer_tf,
        is_valid_file=lambda p: Path(p).relative_to(root).as_posix() in train,
    )  # fmt: skip
    assert len(folder) == len(data.train_ids), (len(folder), len(data.train_ids))
    g = torch.Generator().manual_seed(0)

    def ours(epoch: int) -> tuple[int, float]:
        sampler = data.batches("train", seed=cfg.seed)
        sampler.set_epoch(epoch)
        return _drain(data.loader("train", sampler))

    def peer(epoch: int) -> tuple[int, float]:
        loader = torch.utils.data.DataLoader(folder, batch_size=cfg.batch_size, shuffle=True,
                                             num_workers=cfg.workers, generator=g)  # fmt: skip
        return _drain(loader)

    sides: dict[str, Callable[[int], tuple[int, float]]] = {"ours": ours, "peer": peer}
    print(f"pipeline: {len(folder):,} training images of the animals sample (28x28 gray PNG) -> "
          f"{cfg.image_size}px RGB, batch {cfg.batch_size}, workers {cfg.workers}, "
          f"torch threads {torch.get_num_threads()}; load before {load()}")  # fmt: skip
    for fn in sides.values():  # warm-up: page cache, imports, worker start-up paths
        fn(-1)
    rates: dict[str, list[float]] = {"ours": [], "peer": []}
    ratios = []
    for r in range(args.rounds):
        order = ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]
        got = {}
        for name in order:
            n, dt = sides[name](r)
            got[name] = n / dt
            rates[name].append(n / dt)
        ratios.append(got["ours"] / got["peer"])
        print(f"  round {r + 1}: ours {got['ours']:7.0f} img/s  peer {got['peer']:7.0f} img/s  "
              f"ratio {ratios[-1]:.3f}  load {load()}", flush=True)  # fmt: skip
    print()
    print("| side | median img/s | min | max |")
    print("|---|---:|---:|---:|")
    for name, v in rates.items():
        print(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} |")
    med = statistics.median(rates["ours"]) / statistics.median(rates["peer"])
    verdict = "met" if med >= 0.9 else "NOT met"
    cpu_per_item(data, folder, args)
    print(f"\nratio of medians ours/peer: {med:.3f}; per-round ratios: median "
          f"{statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}; "
          f"target >= 0.9 -> {verdict}; load after {load()}")  # fmt: skip


# ------------------------------------------------------------------------------ finetune
#: The full schedule of the fine-tuning benchmark (and of notebook 06's ``SHORT = False``, which
#: trains 8 epochs on its 800 images): small images keep a CPU epoch of 8,000 images short.
FINETUNE = {"image_size": 32, "batch_size": 64, "epochs": 5, "frozen_epochs": 1, "lr": 3e-3,
            "backbone_lr": 1e-3}  # fmt: skip


def _animals_workspace(args: argparse.Namespace) -> tuple[Workspace, Catalog]:
    """The animals sample in a workspace (reused from ``--tmp``), with the duplicate checks'
    issues.csv so the split keeps near duplicates together."""
    from workbench.clean import check

    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-train-"))
    ws = Workspace(tmp / "ws")
    if ws.has_catalog:
        return ws, ws.load_catalog()
    root = samples.materialize("animals", ws, progress=False)
    cat = ws.attach(Catalog.from_folder(root, progress=False))
    ws.save_catalog(cat)
    t0 = time.perf_counter()
    report = check(cat, checks=["exact_duplicate", "near_duplicate"], workspace=ws,
                   progress=False)  # fmt: skip
    report.to_csv(ws.file("issues"))
    print(f"duplicate checks: {time.perf_counter() - t0:.0f} s; load {load()}")
    return ws, cat


def _holdout(ws: Workspace, cat: Catalog, truth: Any, split: Any) -> Any:
    """An inner split of the training side (grouped, stratified): the validation side is left
    out altogether, so settings chosen on it never see the reported images."""
    from workbench.train import grouped_split
    from workbench.train.split import duplicate_ties

    groups = pd.Series(duplicate_ties(ws, cat), index=cat.df["id"].astype(str).to_numpy())
    inner = split.index[split == "train"]
    side = grouped_split(inner, truth[inner], groups[inner].to_numpy(), seed=1)
    return side


def _fit_timed(data: TrainingData, cfg: TrainConfig, label: str) -> dict[str, Any]:
    from workbench.train import Trainer

    def show(e: dict[str, Any]) -> None:
        if e["kind"] == "epoch":
            print(f"  {label} epoch {e['epoch'] + 1}/{cfg.epochs}: val acc {e['val_acc']:.4f} "
                  f"val loss {e['val_loss']:.4f} ({e['seconds']:.0f} s, load {load()})",
                  flush=True)  # fmt: skip

    t0, cpu0 = time.perf_counter(), time.process_time()
    trainer = Trainer(data, cfg)
    trainer.on_event(show)
    result = trainer.fit(progress=False)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # this process only: DataLoader workers are not counted
    last = result.history["val_acc"].iloc[-1]
    return {"run": label, "status": result.status, "best val acc": result.best_val_acc,
            "last val acc": float(last), "best epoch": result.best_epoch,
            "wall s": wall, "cpu s": cpu, "load after": load()}  # fmt: skip


def bench_finetune(args: argparse.Namespace) -> None:
    from workbench.train import split_for

    if args.threads:
        torch.set_num_threads(args.threads)
    ws, cat = _animals_workspace(args)
    truth = cat.df.set_index("id")["label"].astype(str)
    split = split_for(ws, cat, truth, seed=0)  # saved in the workspace: one split for all runs
    side = "validation side"
    if args.holdout:
        split, side = _holdout(ws, cat, truth, split), "inner split of the training side"
    cfg = TrainConfig(**FINETUNE, workers=args.ft_workers, seed=0, augment=False)
    print(f"finetune: mobilenet_v2 on {len(cat):,} animals, {side}; {cfg}; torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; load before {load()}")  # fmt: skip
    rows = []
    for pretrained in (True,) if args.holdout else (True, False):  # only the pretrained is tuned
        c = cfg.replace(pretrained=pretrained)
        labels = truth[split.index]
        data = TrainingData.from_workspace(ws, labels=labels, split=split, pipeline=None,
                                           normalizer=None, config=c)  # fmt: skip
        rows.append(_fit_timed(data, c, "pretrained" if pretrained else "scratch"))
    print(f"\n({len(data.train_ids):,} train, {len(data.val_ids):,} scored)")
    print(
        "| weights | status | best val acc | last val acc | best epoch | wall time | CPU time "
        "| load after |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['status']} | {r['best val acc']:.4f} | {r['last val acc']:.4f} "
            f"| {r['best epoch'] + 1} | {r['wall s'] / 60:.2f} min | {r['cpu s'] / 60:.2f} min "
            f"| {r['load after']} |"
        )
    p = rows[0]
    ok = p["best val acc"] >= 0.92 and p["wall s"] <= 600
    print(
        f"\ntarget: pretrained >= 0.92 within 10 min -> {'met' if ok else 'NOT met'} "
        f"({p['best val acc']:.4f} in {p['wall s'] / 60:.2f} min)"
    )


# ------------------------------------------------------------------------------ datacentric
def bench_datacentric(args: argparse.Namespace) -> None:
    from workbench.decisions import Decisions
    from workbench.labels import LabelStore
    from workbench.quality import final_labels
    from workbench.train import Run, Trainer, split_for

    if not args.workspace:
        raise SystemExit("datacentric needs --workspace: one that notebooks 01-05 filled")
    if args.threads:
        torch.set_num_threads(args.threads)
    ws = Workspace(args.workspace, create=False)
    clean = Decisions(ws).apply(ws.load_catalog()).ok
    store = LabelStore(ws.path / "labels-simulated.db", catalog=clean)
    final = final_labels(store)
    labels = final.dropna(subset=["label"]).set_index("id")["label"]
    items = clean.filter(clean.df["id"].isin(final.loc[final["source"] != "unlabeled", "id"]))
    truth = items.df.set_index("id")["label"].astype(str)
    split = split_for(ws, clean, labels, seed=0)
    val_ids = [i for i in items.ids if split[i] == "val"]
    cur = store.current(task="class")
    votes = cur[(cur["round"] == 0) & ~cur["annotator"].str.startswith("consensus")]
    agreed = votes.groupby("id")["value"].agg(lambda v: v.iloc[0] if v.nunique() == 1 else None)
    conditions = {
        "1 as collected": (agreed.dropna(), False),
        "2 consensus + review": (labels, False),
        "3 + augmentation": (labels, True),
    }
    # notebook 06's full schedule
    base = TrainConfig(**{**FINETUNE, "epochs": 8}, workers=0)
    print(f"datacentric: {len(items):,} labeled items, {len(val_ids)} scored against the truth; "
          f"{base}; seeds {args.seeds}; torch threads {torch.get_num_threads()}; "
          f"load before {load()}")  # fmt: skip
    rows = []
    for seed in range(args.seeds):  # seeds outermost: a cut-short run still has whole seeds
        for name, (y, augment) in conditions.items():
            for pretrained in (True, False):
                cfg = base.replace(augment=augment, pretrained=pretrained, seed=seed)
                t0 = time.perf_counter()
                fit = Trainer(TrainingData.from_workspace(ws, labels=y, config=cfg)).fit(False)
                probs = Run.load(ws, fit.run_id).predict_proba(items, ids=val_ids)
                acc = float((probs.idxmax(axis=1) == truth[val_ids]).mean())
                w = "ImageNet" if pretrained else "scratch"
                rows.append({"condition": name, "weights": w, "seed": seed, "acc": acc})
                print(
                    f"  seed {seed} {name}, {w}: {acc:.4f} "
                    f"({time.perf_counter() - t0:.0f} s, load {load()})",
                    flush=True,
                )
    df = pd.DataFrame(rows)
    print("\n| condition | weights | mean acc (truth) | std | min | max | seeds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, w), g in df.groupby(["condition", "weights"], sort=True):
        a = g["acc"]
        sd = a.std(ddof=1) if len(a) > 1 else float("nan")
        print(
            f"| {name} | {w} | {a.mean():.4f} | {sd:.4f} "
            f"| {a.min():.4f} | {a.max():.4f} | {len(a)} |"
        )
    print(f"\nload after {load()}")


def cpu_per_item(data: TrainingData, folder: torch.utils.data.Dataset, args: argparse.Namespace
                 ) -> None:  # fmt: skip
    """CPU time per item of the two datasets in this process (one torch thread, no workers).

    On a busy machine wall-clock rounds swing with the neighbours' load; the process's own CPU
    time per item (``time.process_time``) swings much less and compares the work each side
    does for an image: decode, augmentation draw, transforms.
    """
    torch.set_num_threads(1)
    n = min(args.cpu_items, len(folder))
    sides = {
        "ours": lambda k: data.train[(k, k)],  # a seeded draw, as the training loop asks
        "peer": lambda k: folder[k],
    }
    for fn in sides.values():
        for k in range(20):
            fn(k)
    per: dict[str, list[float]] = {"ours": [], "peer": []}
    for r in range(args.rounds):
        for name in ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]:
            t0 = time.process_time()
            for k in range(n):
                sides[name](k)
            per[name].append((time.process_time() - t0) / n * 1e6)
    print(f"\nCPU time per item, in-process, one thread, {n} items x {args.rounds} rounds "
          f"(interleaved); load {load()}")  # fmt: skip
    print("| side | median us/item | min | max |")
    print("|---|---:|---:|---:|")
    for name, v in per.items():
        print(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} |")
    ratio = statistics.median(per["peer"]) / statistics.median(per["ours"])
    print(f"throughput ratio from CPU time (peer us / our us): {ratio:.3f}")


#: ``--section`` name -> function(args). The fine-tune accuracy section registers here.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"pipeline": bench_pipeline}
SECTIONS.update(finetune=bench_finetune, datacentric=bench_datacentric)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--section", choices=[*SECTIONS, "all"], default="all")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="images in all (0: the 10,000)")
    ap.add_argument("--cpu-items", type=int, default=300, help="items per CPU-time round")
    ap.add_argument("--tmp", default=None, help="folder for the workspace (default: a new one)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--holdout",
        action="store_true",
        help="finetune: score on an inner split of the training side (tuning)",
    )
    ap.add_argument("--ft-workers", type=int, default=1, help="finetune: DataLoader workers")
    ap.add_argument("--workspace", default=None, help="datacentric: a workspace 01-05 filled")
    ap.add_argument("--seeds", type=int, default=3, help="datacentric: seeds per condition")
    args = ap.parse_args(argv)
    for name, fn in SECTIONS.items():
        if args.section in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()
