"""The benchmarks' pictures: pods over time, latency CDFs, CPU per component (PNG files).

Why: issue #16 asks for the numbers of docs/benchmarks-syncer.md as pictures next to its
tables; a table of medians hides how a burst progresses (a stall, a tail) and how the
latency spreads.  Pure functions of the numbers a bench collected: each takes the data and
the output path and writes one PNG (matplotlib's non-interactive Agg backend, no display).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def pods_over_time(series: Mapping[str, Sequence[float]], path: Path, *, title: str) -> None:
    """One step line per series: how many pods had arrived (or were Running) t seconds after the start."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, times in series.items():
        ordered = sorted(times)
        ax.step([0.0, *ordered], range(len(ordered) + 1), where="post", label=label)
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("pods")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def cdf(series: Mapping[str, Sequence[float]], path: Path, *, title: str, xlabel: str) -> None:
    """Empirical CDF of each series (values in the unit of ``xlabel``), log x when the spread is wide."""
    fig, ax = plt.subplots(figsize=(7, 4))
    low = high = None
    for label, values in series.items():
        ordered = sorted(values)
        if not ordered:
            continue
        n = len(ordered)
        ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")
        low = ordered[0] if low is None else min(low, ordered[0])
        high = ordered[-1] if high is None else max(high, ordered[-1])
    if low is not None and high is not None and low > 0 and high / low > 30:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def stacked_bars(table: Mapping[str, Mapping[str, float]], path: Path, *, title: str, ylabel: str) -> None:
    """One bar per column of ``table`` (``table[column][part]``), stacked by part."""
    columns = list(table)
    parts = sorted({part for col in table.values() for part in col},
                   key=lambda part: -sum(table[c].get(part, 0.0) for c in columns))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(columns) + 3), 4.5))
    bottom = [0.0] * len(columns)
    colors = plt.get_cmap("tab20")
    for i, part in enumerate(parts):
        heights = [max(0.0, table[c].get(part, 0.0)) for c in columns]
        ax.bar(columns, heights, bottom=bottom, label=part, color=colors(i % 20))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20, labelsize="small")
    ax.legend(fontsize="x-small", bbox_to_anchor=(1.01, 1), loc="upper left")
    _save(fig, path)


def _save(fig: matplotlib.figure.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
