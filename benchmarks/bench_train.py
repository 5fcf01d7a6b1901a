"""Training benchmarks.

    .venv/bin/python benchmarks/bench_train.py [--section pipeline] [--rounds 7] [--workers 2]

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    args = ap.parse_args(argv)
    for name, fn in SECTIONS.items():
        if args.section in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()
