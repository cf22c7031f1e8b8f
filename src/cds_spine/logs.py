"""One logging set-up for the service and its server (uvicorn), applied in every worker process."""
from __future__ import annotations

import logging
import logging.config
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig: every logger (cds_spine, uvicorn, the rest) writes one format to stderr.
    uvicorn applies it in each worker it starts."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"handlers": [], "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))


def ensure_logging(level: str) -> None:
    """When the process has no logging set up (uvicorn started by hand), set ours up, so the per-call
    lines are not lost."""
    if not logging.getLogger().handlers:
        configure_logging(level)
