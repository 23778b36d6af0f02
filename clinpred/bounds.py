"""The largest values a config may hold: far beyond what a study needs, far below what breaks a run.

``window_hours = inf``, ``early_hours = 1e308`` or ``n_resamples = 100000000`` used to be accepted
and end in an overflow, a crash or days of work. Every config model refuses NaN and infinity
(``allow_inf_nan=False`` in ``BOUNDED``) and bounds each number with these limits, so a value outside
them is refused with one message naming the key, before any data is read.
"""

from __future__ import annotations

from pydantic import ConfigDict


def all_means_none(value: object) -> object:
    """``"all"`` (or ``"none"``/``"null"``) read as None, for a limit whose None means "no limit": neither
    TOML nor a ``--backend key=value`` flag can write None. Use as a pydantic ``mode="before"`` validator."""
    return None if isinstance(value, str) and value.strip().lower() in ("all", "none", "null") else value


# Config models: unknown keys refused, NaN and +-inf refused for every float.
BOUNDED = ConfigDict(extra="forbid", allow_inf_nan=False)

MAX_SEED = 2**32 - 1  # scikit-learn's random_state and numpy's legacy seeding stop here
MAX_HOURS = 87_600.0  # ten years: no admission window or note gap is longer
MAX_DAYS = 36_500.0  # a century: no follow-up horizon, half-life or readmission window is longer
MAX_RESAMPLES = 100_000  # bootstrap resamples: 1,000 is usual, 10,000 is generous
MAX_FOLDS = 100  # cross-validation folds (outer or inner)
MAX_COUNT = 1_000_000  # notes per patient (last_k), labels (top_k), neighbours, patients per group
MAX_ITERATIONS = 1_000_000  # solver iterations, boosting rounds, training steps
MAX_LEAVES = 131_072  # LightGBM's own limit on num_leaves
MAX_LEARNING_RATE = 1.0  # gradient boosting and optimisers: a step above 1 only diverges
MAX_C = 1e6  # inverse L2 strength of the logistic regression: 1e6 is already no penalty at all
MAX_TOLERANCE = 1.0  # cosine scores lie in [-1, 1]
MAX_DIMENSIONS = 65_536  # PCA components, embedding dimensions
MAX_BLOCK = 1_048_576  # rows per block of the recall search (memory only)
MAX_POOL = 100_000_000  # recall candidates per query
MAX_BATCH = 65_536  # texts or pairs per batch
MAX_SEQUENCE = 131_072  # tokens per text
MAX_WEIGHT = 1_000.0  # loss weights and the softmax scale (inverse temperature)
MAX_EPOCHS = 1_000.0
