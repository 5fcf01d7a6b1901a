"""The method every benchmark here follows (ARCHITECTURE §8), in one place.

* ``interleaved(sides, rounds)``: >= 7 rounds of ours, peer, ours, peer, ... (the order flips
  every round so neither side always runs on a warmer cache), after one untimed warm-up round
  of each side, the machine load recorded before and after.
* ``Ratio``: the per-round ratio of two sides, its median and interquartile range, and whether
  the median meets a target.
* ``record(bench, name, ratio, target)``: appends one line per figure to
  ``benchmarks/results/<bench>.jsonl``; ``python benchmarks/_method.py`` prints, per figure, the
  medians of the last three invocations and "met" only when all three meet the target.

A side is a zero-argument callable that does the whole measured work once and returns its
wall time in seconds (``timed(fn)`` wraps one that returns nothing), so a side may time a
subprocess end to end where a whole-process comparison is the fairer one.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def load() -> str:
    """The 1, 5 and 15 minute load averages, for the table heads."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A side from a callable that does the work: returns its wall time."""

    def side() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return side


@dataclass
class Rounds:
    """Times per side, in round order, and the load around the rounds."""

    times: dict[str, list[float]]
    load_before: str
    load_after: str

    def median(self, side: str) -> float:
        return float(np.median(self.times[side]))

    def ratio(self, num: str, den: str) -> Ratio:
        """Per-round ``num / den`` (e.g. bare loop / ours for a throughput share)."""
        return Ratio(np.asarray(self.times[num]) / np.asarray(self.times[den]))


def interleaved(
    sides: dict[str, Callable[[], float]], rounds: int = 7, warmup: bool = True
) -> Rounds:
    """Run every side once per round, alternating the order, after an untimed warm-up."""
    if rounds < 7:
        print(f"note: {rounds} rounds is below the 7 the method asks for", file=sys.stderr)
    names = list(sides)
    before = load()
    if warmup:
        for name in names:
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(float(sides[name]()))
    return Rounds(times, before, load())


@dataclass
class Ratio:
    """A ratio per round with its median and interquartile range."""

    values: np.ndarray = field(repr=False)

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def iqr(self) -> tuple[float, float]:
        q1, q3 = np.percentile(self.values, [25, 75])
        return float(q1), float(q3)

    def meets(self, target: float, higher_is_better: bool = True) -> bool:
        return self.median >= target if higher_is_better else self.median <= target

    def text(self, digits: int = 3) -> str:
        q1, q3 = self.iqr
        n = len(self.values)
        return f"{self.median:.{digits}f} (IQR {q1:.{digits}f}-{q3:.{digits}f}, n={n})"


def verdict(ratio: Ratio, target: float, higher_is_better: bool = True, digits: int = 3) -> str:
    """ "0.871 (IQR 0.85-0.89, n=7) target >= 0.85: met in this invocation"."""
    op = ">=" if higher_is_better else "<="
    met = "met" if ratio.meets(target, higher_is_better) else "MISSED"
    return f"{ratio.text(digits)} target {op} {target}: {met} in this invocation"


def record(
    bench: str, name: str, ratio: Ratio, target: float, higher_is_better: bool = True
) -> None:
    """Append this invocation's figure to ``results/<bench>.jsonl`` (summarised by ``main``).

    An invocation of fewer than 7 rounds (a quick look) is printed but not recorded: it is
    not one of the three the verdict counts."""
    if len(ratio.values) < 7:
        print(f"note: {name} not recorded ({len(ratio.values)} rounds)", file=sys.stderr)
        return
    RESULTS.mkdir(exist_ok=True)
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": platform.node(),
        "figure": name,
        "median": ratio.median,
        "iqr": ratio.iqr,
        "rounds": len(ratio.values),
        "target": target,
        "higher_is_better": higher_is_better,
        "load": load(),
    }
    with open(RESULTS / f"{bench}.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def summary(last: int = 3) -> list[str]:
    """Per benchmark figure: the medians of the last ``last`` invocations and the verdict."""
    out = []
    for path in sorted(RESULTS.glob("*.jsonl")):
        figures: dict[str, list[dict]] = {}
        for raw in path.read_text().splitlines():
            if raw.strip():
                row = json.loads(raw)
                figures.setdefault(row["figure"], []).append(row)
        for name, rows in figures.items():
            rows = rows[-last:]
            meds = [r["median"] for r in rows]
            hib = rows[-1]["higher_is_better"]
            target = rows[-1]["target"]
            ok = all((m >= target) if hib else (m <= target) for m in meds)
            verdict_ = "met" if ok else "missed"
            if len(rows) < last:
                verdict_ = f"{len(rows)} of {last} invocations"
            op = ">=" if hib else "<="
            out.append(
                f"{path.stem} | {name} | medians {', '.join(f'{m:.3f}' for m in meds)} | "
                f"target {op} {target} | {verdict_} | loads {'; '.join(r['load'] for r in rows)}"
            )
    return out


if __name__ == "__main__":
    print("\n".join(summary()) or f"no results under {RESULTS}")
