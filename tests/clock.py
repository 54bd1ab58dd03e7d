"""A clock the test moves by hand: ``clock.now += 5``.

Why: the queue, retry log, virtual-node manager and credential sources take a ``clock`` callable so
their timing is tested without sleeping; every such test needs the same three-line clock.
"""

from __future__ import annotations


class ManualClock:
    """Returns :attr:`now` when called; the test sets or advances it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
