"""Run records: every fine-tuning run leaves a folder in the Workspace.

Layout (``workspace.file("runs") / <run id>``)::

    config.json     the TrainConfig
    data.json       data versions: label-store event count, fingerprints of labels, catalog,
                    pipeline, normalizer and split; classes and sample counts
    status.json     status, epoch and batch reached, best epoch, times, error
    metrics.csv     one row per finished epoch
    checkpoint.pt   the last resumable state (weights, optimizer, schedule, RNG, counters)
    best.pt         the weights with the lowest validation loss so far

Every file is written atomically (:func:`workbench.fsutil.atomic_open`): a run killed at any
moment leaves the previous complete version of each file, so it resumes from its last
checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.embed import Embedder
from workbench.errors import WorkspaceError
from workbench.fsutil import atomic_open, atomic_write
from workbench.train.config import TrainConfig, TrainError

if TYPE_CHECKING:
    import torch

    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = ["VERSION_KEYS", "Run", "RunEmbedder", "list_runs"]

#: The data versions a resumed run must find unchanged.
VERSION_KEYS = ("labels", "catalog", "pipeline", "normalizer", "split", "classes")
_FILES = {
    "config": "config.json",
    "data": "data.json",
    "status": "status.json",
    "metrics": "metrics.csv",
    "checkpoint": "checkpoint.pt",
    "best": "best.pt",
}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _torch_save(obj: Any, path: Path) -> None:
    import torch

    with atomic_open(path) as f:
        torch.save(obj, f)


def _torch_load(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainError(f"{path} cannot be read ({e}); delete the run and train again") from None


class Run:
    """One recorded run (see the module docstring). Open one with :meth:`load`."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.workspace = workspace
        self.id = str(run_id)
        self.path = workspace.file("runs") / self.id

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status.get('status')!r})"

    def file(self, kind: str) -> Path:
        return self.path / _FILES[kind]

    # ------------------------------------------------------------------ creating / opening
    @classmethod
    def create(cls, workspace: Workspace, config: TrainConfig, versions: dict[str, Any]) -> Run:
        """A new run folder with its config, data versions and status ``"created"``."""
        root = workspace.file("runs")
        root.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{config.model}-s{config.seed}"
        for k in range(1000):
            run_id = stem if k == 0 else f"{stem}-{k + 1}"
            try:
                os.mkdir(root / run_id)  # atomic: two runs started in one second get two ids
                break
            except FileExistsError:
                continue
        run = cls(workspace, run_id)
        atomic_write(run.file("config"), json.dumps(config.to_dict(), indent=2, sort_keys=True))
        atomic_write(run.file("data"), json.dumps(versions, indent=2, sort_keys=True, default=str))
        run.write_status(status="created", epoch=0, batch=0, created=_now())
        return run

    @classmethod
    def load(cls, workspace: Workspace, run_id: str) -> Run:
        """Open a recorded run; :class:`TrainError` if there is none of that id."""
        run = cls(workspace, run_id)
        if not run.file("config").exists():
            known = list_runs(workspace)["run"].tolist()[-5:]
            raise TrainError(f"no run {run_id!r} in {str(workspace.path)!r}; recent runs: {known}")
        return run

    # ------------------------------------------------------------------ records
    def _json(self, kind: str) -> Any:
        try:
            return json.loads(self.file(kind).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise WorkspaceError(f"{self.file(kind)} is not valid JSON ({e})") from None

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self._json("config"))

    @property
    def versions(self) -> dict[str, Any]:
        return self._json("data")

    @property
    def classes(self) -> list[str]:
        return list(self.versions.get("classes", []))

    @property
    def status(self) -> dict[str, Any]:
        return self._json("status")

    def write_status(self, **fields: Any) -> None:
        status = {**self.status, **fields, "updated": _now()}
        atomic_write(self.file("status"), json.dumps(status, indent=2, sort_keys=True))

    @property
    def history(self) -> pd.DataFrame:
        """Metrics per finished epoch (``epoch, train_loss, train_acc, val_loss, val_acc,
        seconds, best, lr``)."""
        if not self.file("metrics").exists():
            return pd.DataFrame(columns=["epoch", "train_loss", "train_acc", "val_loss",
                                         "val_acc", "seconds", "best"])  # fmt: skip
        return pd.read_csv(self.file("metrics"))

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        with atomic_open(self.file("metrics"), "w") as f:
            pd.DataFrame(rows).to_csv(f, index=False)

    def check_versions(self, versions: dict[str, Any]) -> None:
        """:class:`TrainError` when ``versions`` differ from the recorded ones."""
        mine = self.versions
        changed = [k for k in VERSION_KEYS if mine.get(k) != versions.get(k)]
        if changed:
            raise TrainError(
                f"the data changed since run {self.id} started ({', '.join(changed)}); it cannot "
                "resume on other data. Start a new run: Trainer(data, config).fit()"
            )

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        _torch_save(state, self.file("checkpoint"))

    def load_checkpoint(self) -> dict[str, Any] | None:
        p = self.file("checkpoint")
        return _torch_load(p) if p.exists() else None

    def save_best(self, weights: dict[str, Any], epoch: int, val_loss: float) -> None:
        _torch_save({"model": weights, "epoch": epoch, "val_loss": val_loss}, self.file("best"))

    def model(self, which: str = "best") -> torch.nn.Module:
        """The run's network in eval mode on the CPU: the ``"best"`` weights (lowest validation
        loss) or the ``"last"`` checkpoint's."""
        from workbench.train.network import build_network

        if which not in ("best", "last"):
            raise TrainError(f"which must be 'best' or 'last', got {which!r}")
        p = self.file("best" if which == "best" else "checkpoint")
        if not p.exists():
            raise TrainError(f"run {self.id} has no {which} weights yet; train it first (fit())")
        net = build_network(self.config.replace(pretrained=False), len(self.classes))
        net.load_state_dict(_torch_load(p)["model"])
        return net.eval()

    # ------------------------------------------------------------------ using the model
    def transform(self) -> Any:
        """The validation transform of the run (resize and normalise; no augmentation)."""
        from workbench.train.data import IMAGENET_MEAN, IMAGENET_STD, build_transform

        spec = self.versions.get("normalizer_spec")
        if spec:
            from workbench.normalize import Normalizer

            n = Normalizer.from_dict(spec)
            mean, std = n.mean_, n.std_
        else:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        return build_transform(self.config.image_size, mean, std, None)

    def predict_proba(
        self, catalog: Catalog, ids: list[str] | None = None, *, batch_size: int = 128
    ) -> pd.DataFrame:
        """Class probabilities of the best network: rows ``ids`` (default: the readable
        samples of ``catalog``), one column per class."""
        import torch

        from workbench.torchdata import CatalogDataset

        cat = catalog.ok
        if ids is not None:
            ids = [str(i) for i in ids]
            cat = cat.filter(cat.df["id"].isin(ids))
            missing = sorted(set(ids) - set(cat.df["id"].astype(str)))
            if missing:
                raise TrainError(
                    f"{len(missing)} id(s) are not readable samples of the catalog, e.g. "
                    f"{missing[0]!r}"
                )
        ds = CatalogDataset(cat, transform=self.transform(), target=None)
        net = self.model()
        out = []
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size)
        with torch.inference_mode():
            for x in loader:
                out.append(torch.softmax(net(x), dim=1))
        p = torch.cat(out).numpy() if out else []
        df = pd.DataFrame(p, index=pd.Index(ds.ids, name="id"), columns=self.classes)
        return df.loc[ids] if ids is not None else df

    def embedder(self, batch_size: int = 64, device: str = "cpu") -> Embedder:
        """An :class:`~workbench.embed.Embedder` whose network is this run's fine-tuned backbone
        (best weights, head removed); its cache key names the run, so vectors of different runs
        never mix. Give it to the Assistant so y = g(x; w) improves with the model."""
        return RunEmbedder(self, batch_size=batch_size, device=device)


class RunEmbedder(Embedder):
    """An :class:`~workbench.embed.Embedder` over a run's fine-tuned backbone (best weights,
    head removed) and its validation transform. Vectors are cached under a key naming the run
    (``run-<id>-best``), apart from the pretrained model's and other runs'."""

    def __init__(self, run: Run, batch_size: int = 64, device: str = "cpu") -> None:
        cfg = run.config
        super().__init__(cfg.model, batch_size, device, image_size=cfg.image_size)
        self.run = run

    def __repr__(self) -> str:
        return f"RunEmbedder({self.run.id!r}, batch_size={self.batch_size})"

    def _network(self) -> tuple[Any, Any, Any]:
        return self.run.model(), self.run.transform(), f"run:{self.run.id}"

    @property
    def cache_key(self) -> str:
        return f"run-{self.run.id}-best"


def list_runs(workspace: Workspace) -> pd.DataFrame:
    """One row per recorded run, oldest first: ``run, status, model, pretrained, epochs,
    epoch, best_epoch, best_val_loss, best_val_acc, created, updated``."""
    rows = []
    root = workspace.file("runs")
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if not (p / _FILES["config"]).exists():
            continue
        run = Run(workspace, p.name)
        try:
            cfg, st = run._json("config"), run.status
        except WorkspaceError:
            continue
        rows.append({
            "run": p.name, "status": st.get("status"), "model": cfg.get("model"),
            "pretrained": cfg.get("pretrained"), "epochs": cfg.get("epochs"),
            "epoch": st.get("epoch"), "best_epoch": st.get("best_epoch"),
            "best_val_loss": st.get("best_val_loss"), "best_val_acc": st.get("best_val_acc"),
            "created": st.get("created"), "updated": st.get("updated"),
        })  # fmt: skip
    cols = ["run", "status", "model", "pretrained", "epochs", "epoch", "best_epoch",
            "best_val_loss", "best_val_acc", "created", "updated"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
