"""What the catalog says about each sample id, looked up in constant time.

The label store checks every sample id against its catalog, records the sample's content hash,
checks boxes against the image size, and exports read the image files; all of it goes through
one :class:`CatalogIndex`, rebuilt only when the catalog (or its table) is another object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.errors import LabelError
from workbench.labels._checks import _short, _text

if TYPE_CHECKING:
    from workbench.catalog import Catalog

#: ``(hash or None, width, height, status, path)`` of one sample.
Info = tuple[str | None, int, int, str, str]


class CatalogIndex:
    """``id -> (hash, width, height, status, path)`` of the last catalog asked about."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._maps: dict[str, Info] = {}

    def maps(self, catalog: Catalog, *, fresh: bool = False) -> dict[str, Info]:
        """The index of ``catalog``; rebuilt when the catalog changes, or always if ``fresh``."""
        df = catalog.df
        key = (id(catalog), id(df), len(df))
        if fresh or key != self._key:
            hashes = [h if isinstance(h, str) and h else None for h in df["hash"]]
            cols = zip(
                df["id"], hashes, df["width"], df["height"], df["status"], df["path"], strict=True
            )
            self._maps = {
                sid: (h, int(w), int(ht), str(st), str(p)) for sid, h, w, ht, st, p in cols
            }
            self._key = key
        return self._maps

    def sample(
        self, sample_id: Any, catalog: Catalog | None
    ) -> tuple[str, str | None, tuple[int, int] | None]:
        """Validated ``(id, hash, (width, height))``; hash and size are None without a catalog.

        Raises
        ------
        LabelError
            ``sample_id`` is not text, or not in ``catalog``.
        """
        sid = _text("sample id", sample_id)
        if catalog is None:
            return sid, None, None
        info = self.maps(catalog).get(sid)
        if info is None:
            raise LabelError(
                f"no sample {_short(sid)} in the catalog; label samples by their catalog id "
                "(catalog.ids)"
            )
        return sid, info[0], (info[1], info[2])
