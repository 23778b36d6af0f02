"""Keep transformers' one benign "LOAD REPORT" off a user's screen, and every other one on it.

transformers 5 logs a table on every model load whose checkpoint holds a key the model does not
expect. For BERT-family sentence-transformers checkpoints (the bundled all-MiniLM-L6-v2 among them)
that key is only ``embeddings.position_ids``: a buffer older checkpoints saved and current code
rebuilds, so nothing is lost. Printed on every load, the demo's included, the table reads like an
error. This filter drops a report whose only entries are such ``position_ids`` keys; a report with a
MISSING weight (newly initialised), a shape MISMATCH, a failed CONVERSION or any other unexpected key
is shown as transformers writes it.
"""

from __future__ import annotations

import logging
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BENIGN_SUFFIX = "position_ids"
_SERIOUS = ("MISSING", "MISMATCH", "CONVERSION")
_LOGGER = "transformers.modeling_utils"  # where transformers logs the report from


class BenignLoadReport(logging.Filter):
    """Drops the load report that lists nothing but unexpected ``position_ids`` buffers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", record.getMessage())
        if "LOAD REPORT" not in message or any(word in message for word in _SERIOUS):
            return True
        keys = [
            line.split("|")[0].strip()
            for line in message.splitlines()
            if "|" in line and "UNEXPECTED" in line
        ]
        return not keys or not all(key.endswith(_BENIGN_SUFFIX) for key in keys)


def hide_benign_load_reports() -> None:
    """Install the filter once on the logger transformers reports loads through."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(f, BenignLoadReport) for f in logger.filters):
        logger.addFilter(BenignLoadReport())
