"""What `clinpred finetune` does between parsing and printing: pick the data source, build the config.

Kept here, not in cli.py, so the command stays thin and the same path can be tested without a shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clinpred.errors import InputError
from clinpred.finetune.config import FinetuneConfig

SYNTHETIC_SIZES = ("tiny", "demo", "mimic3")


def build_config(config_file: Path | None, overrides: dict[str, Any]) -> FinetuneConfig:
    """The TOML file's settings (or the defaults), with every flag the user gave on top."""
    if config_file is not None:
        return FinetuneConfig.from_toml(config_file, overrides)
    return FinetuneConfig.from_values({}, overrides, source="flags")


def read_pairs_file(path: Path) -> pd.DataFrame:
    """A team's pairs from .csv or .parquet; the columns are checked by ``finetune_pairs``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such pairs file.")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot read the pairs file ({type(exc).__name__}).") from None
    raise InputError(f"{path}: pairs must be a .csv or .parquet file with columns anchor, positive[, group].")


def run_finetune_command(
    *,
    data: Path | None,
    synthetic: str | None,
    pairs: Path | None,
    out: Path,
    config: FinetuneConfig,
    resume: bool,
    progress: bool,
    max_repaired_share: float | None = None,
    keep_checkpoints: bool = False,
):
    """Load the one data source the user named and fine-tune on it (``max_repaired_share``: the share
    of a table's rows a repair rule may change before the source is refused, DataConfig's default)."""
    from clinpred.run_folder import RESUME_HINT, check_output_folder

    given = [name for name, v in (("--data", data), ("--synthetic", synthetic), ("--pairs", pairs)) if v]
    if len(given) != 1:
        raise InputError(
            "give exactly one of --data PATH, --synthetic SIZE or --pairs FILE"
            + (f" (got {' and '.join(given)})." if given else ".")
        )
    # before the first write: owner-only modes for a credentialed source (a pairs file always is), so the
    # model folder, its checkpoints and logs are created so (clinpred.privacy.modes, DESIGN.md rule 6)
    from clinpred.privacy.modes import protect_source

    protect_source(data, credentialed=True if pairs is not None else (False if synthetic else None))
    # before any work: never into someone's folder, the data or the pairs (rank 0 writes the mark later)
    check_output_folder(out, "finetune", inputs=[("--data", data), ("--pairs", pairs)], hint=RESUME_HINT)
    if pairs is not None:  # a bad pairs file is refused before torch and sentence-transformers load (~5 s)
        from clinpred.finetune.pairs import check_pairs_frame

        frame = read_pairs_file(pairs)
        check_pairs_frame(frame, config)
        from clinpred.finetune.train import finetune_pairs  # torch: only once the inputs are known good

        return finetune_pairs(
            frame,
            config,
            out,
            progress=progress,
            resume=resume,
            keep_checkpoints=keep_checkpoints,
        )
    if synthetic is not None and synthetic not in SYNTHETIC_SIZES:
        raise InputError(f"--synthetic {synthetic!r}: choose one of {', '.join(SYNTHETIC_SIZES)}.")
    from clinpred.config import DataConfig
    from clinpred.pipeline import build_cohort

    # The same cohort `clinpred run` reads for the same flags (the synthetic one generated once, seed 0),
    # so that the patient split, and so the held-out evaluation patients, match.
    limit = {} if max_repaired_share is None else {"max_repaired_share": max_repaired_share}
    cohort = build_cohort(
        DataConfig(path=data, synthetic=synthetic, **limit), progress=progress, relax="--max-repaired-share"
    )
    # torch, transformers and sentence-transformers (~5 s) load only once the data is known good, so a bad
    # --data is refused at once
    from clinpred.finetune.train import finetune

    return finetune(cohort, config, out, progress=progress, resume=resume, keep_checkpoints=keep_checkpoints)


def summary_lines(report: Any) -> list[str]:
    """Counts and scores for the terminal (never text)."""
    lines = [
        f"pairs {report.pairs}, steps {report.steps}, epochs {report.epochs:.2f}, "
        f"wall time {report.wall_time_s:.1f} s"
        + (f", resumed from {report.resumed_from}" if report.resumed_from else "")
    ]
    if report.recall_after:
        before, after = report.recall_before or {}, report.recall_after
        ks = sorted(int(k.split("@")[1]) for k in after if k.startswith("recall@"))
        lines.append(
            "validation next-note recall (base -> fine-tuned): "
            + ", ".join(
                f"@{k} {before.get(f'recall@{k}', float('nan')):.3f} -> {after[f'recall@{k}']:.3f}"
                for k in ks
            )
            + f" ({int(after['queries'])} queries, pool {int(after['pool'])})"
        )
    if report.audit is not None:
        from clinpred.privacy.audit import audit_line

        lines.append(audit_line(report.audit))
    lines.append(f"wrote {report.out} (SentenceTransformer folder, clinpred-finetune.json)")
    if report.checkpoints:
        lines.append(f"checkpoints kept in {report.checkpoints} (--keep-checkpoints)")
    return lines
