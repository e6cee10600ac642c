"""Access logs without secrets: API keys sent in a URL (refused with a 401 anyway) are masked before
uvicorn's access log line is written, whatever handler or format the deployment uses."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from twin_platform.api.security import KEY_QUERY_PARAMETERS

REDACTED = "REDACTED"
_SECRET_PARAMETERS = re.compile(r"(?i)([?&](?:" + "|".join(map(re.escape, KEY_QUERY_PARAMETERS)) + r")=)[^&#\s]*")
_KEY_LIKE = re.compile(r"twin_[A-Za-z0-9_\-]{16,}")  # a key anywhere else in the path


def scrub(text: str) -> str:
    return _KEY_LIKE.sub(REDACTED, _SECRET_PARAMETERS.sub(rf"\g<1>{REDACTED}", text))


class ScrubSecrets(logging.Filter):
    """Masks secrets in uvicorn's access records (``args`` = client, method, path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        record.msg = scrub(str(record.msg))
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging config with :class:`ScrubSecrets` on its access logger. Passed to uvicorn, so that
    every worker process configures it (a filter added in the parent would not reach spawned workers)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["scrub_secrets"] = {"()": f"{__name__}.ScrubSecrets"}
    config["loggers"]["uvicorn.access"]["filters"] = ["scrub_secrets"]
    return config
