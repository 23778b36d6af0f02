"""ACES task configs for clinpred's MEDS codes, shipped with clinpred: ``--aces inhospital_mortality``.

Kept import-light (no pandas, no es-aces) so that ``clinpred tasks list`` can name them cheaply.
"""

from __future__ import annotations

from pathlib import Path


def packaged_configs() -> dict[str, Path]:
    """The ACES configs clinpred ships (this folder), by name: inhospital_mortality, readmission_30d."""
    from importlib.resources import files

    folder = files(__name__)
    return {Path(e.name).stem: Path(str(e)) for e in folder.iterdir() if e.name.endswith(".yaml")}
