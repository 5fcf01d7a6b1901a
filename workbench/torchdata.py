"""The bridge to PyTorch training: a map-style Dataset over a Catalog.

An item can be asked for by index (``dataset[i]``, as torchvision's ``ImageFolder``) or by
``(index, seed)``: then the transform's random draws come from a generator seeded with ``seed``
and the caller's torch RNG is left as it was. A sampler that hands out seeds (the training loop's
:class:`~workbench.train.data.EpochBatches`) makes every augmentation draw a function of the
run's seed, the epoch and the sample, whatever the DataLoader worker or the order of a resumed
run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from torch.utils.data import Dataset

from workbench.errors import ParameterError
from workbench.io import decode_scanned

if TYPE_CHECKING:
    from workbench.catalog import Catalog


class CatalogDataset(Dataset):
    """``(image, class_index)`` items in catalog order, like torchvision's ``ImageFolder``.

    Attributes
    ----------
    classes : list of str
        Class names, sorted unless given.
    class_to_idx : dict
        Name to index.
    ids : list of str
        Sample id of each item.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        transform: Callable[[Any], Any] | None = None,
        target: str | None = "label",
        classes: Sequence[str] | None = None,
        keep_16bit: bool = False,
    ) -> None:
        df = catalog.df
        self.ids: list[str] = df["id"].tolist()
        self.paths: list[str] = df["path"].tolist()
        self.transform = transform
        self.keep_16bit = keep_16bit
        self.targets: list[int] | None = None
        if target is None:
            self.classes, self.class_to_idx = [], {}
            return
        if target not in df.columns:
            raise ParameterError(f"no column {target!r} to take targets from")
        values = df[target]
        if values.isna().any():
            n = int(values.isna().sum())
            raise ParameterError(
                f"{n} sample(s) have no {target!r}; filter them out first "
                f"(catalog.filter('{target}.notna()')) or pass target=None"
            )
        names = [str(v) for v in values]
        self.classes = list(classes) if classes is not None else sorted(set(names))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(names) - set(self.class_to_idx))
        if unknown:
            raise ParameterError(f"labels {unknown[:5]} are not in the given classes")
        self.targets = [self.class_to_idx[n] for n in names]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        i, seed = key if isinstance(key, tuple) else (key, None)
        im = decode_scanned(self.paths[i], sample_id=self.ids[i], keep_16bit=self.keep_16bit)
        if self.transform is None:
            x = im
        elif seed is None:
            x = self.transform(im)
        else:
            import torch

            # torchvision draws from the global CPU generator: seed it for this item, then put
            # the caller's state back. The generator's own calls, not torch.manual_seed /
            # fork_rng: those also visit every accelerator backend (~0.45 ms an item).
            gen = torch.default_generator
            state = gen.get_state()
            try:
                gen.manual_seed(seed)
                x = self.transform(im)
            finally:
                gen.set_state(state)
        return x if self.targets is None else (x, self.targets[i])
