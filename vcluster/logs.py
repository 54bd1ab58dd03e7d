"""structlog configured once for every entry point.

Why: the operator, the syncer and the kubelet proxy all log through structlog
with context bound per unit of work (tenant, kind, key, direction).  Having
one ``configure_logging()`` keeps the format identical across components and
makes it the only place that touches logging configuration.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and the stdlib root logger; later calls do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
