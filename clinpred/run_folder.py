"""Run folders: the results model they hold, the mark that says clinpred wrote them, and the guard.

One home for what a run folder is, so that data flows one way: ``pipeline`` writes run folders and
``report`` reads them, and both import this module (never each other).

Every folder a clinpred command writes (a run, a demo, an ablation, a report, a fine-tuned model)
carries ``.clinpred-run``: which command wrote it, what kind of folder it is, and when. A folder is
clinpred's to replace or add to only when it carries that mark (or, written by an earlier version, a
``results.json`` that reads back as ``RunResults``, an ``ablation.json``, a ``comparison.json``, a
fine-tune's record or checkpoints, a demo's models/generator.json) and holds nothing else than what
that command writes. Anything else that is not empty is refused, so clinpred never deletes what it
did not write (DESIGN.md rule 9).
A synthetic cohort is marked by its seal (``CLINPRED_SYNTHETIC.json``) and is never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from clinpred.atomic import check_directory_path, write_text
from clinpred.errors import InputError
from clinpred.interrupts import raise_if_interrupted
from clinpred.tasks.result import TaskResult
from clinpred.temporaries import _TEMPORARY, remove_stale_temporaries, temporary_directory

# ---- the results model: results.json ----------------------------------------------------------------


class BackendRun(BaseModel):
    """What happened to one backend in a run."""

    label: str
    name: str
    status: Literal["ok", "not run"]
    reason: str | None = None  # why it did not run
    fingerprint: str | None = None
    description: dict[str, Any] = Field(default_factory=dict)  # model id, revision, versions, settings
    notes_embedded: int = 0
    notes_newly_embedded: int = 0  # of those, embedded by this run (the rest came from the cache)
    seconds: dict[str, float] = Field(default_factory=dict)  # "embed", then one entry per task
    results: dict[str, TaskResult] = Field(default_factory=dict)
    tasks_not_run: dict[str, str] = Field(default_factory=dict)  # task -> why (e.g. too few patients)
    warnings: list[str] = Field(default_factory=list)
    # fine-tuned models: clinpred-finetune.json's training/validation patient hashes and whether they are
    # this run's fine-tuning patients; {"record": None} for a gemma-finetuned model without that record
    provenance: dict[str, Any] = Field(default_factory=dict)


class RunResults(BaseModel):
    """results.json: everything needed to read, trust and reproduce a run's numbers."""

    clinpred_version: str
    created: str
    data: str
    cohort: dict[str, Any]  # the whole cohort's summary
    split: dict[str, Any]  # patients per side, the split config, a hash of the evaluation patients
    evaluation: dict[str, Any]  # the evaluation cohort's summary
    allow_external_api: bool
    versions: dict[str, str]
    config: dict[str, Any]
    backends: list[BackendRun]


def read_results(run_dir: Path) -> RunResults | None:
    """``run_dir/results.json`` as RunResults, or None when there is none or it is not one."""
    try:
        return RunResults.model_validate_json((Path(run_dir) / "results.json").read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


# ---- the mark ----------------------------------------------------------------------------------------

MARKER = ".clinpred-run"
Kind = Literal["run", "demo", "ablate", "report", "finetune", "synth", "export"]

_RUN = frozenset(
    {"config.json", "results.json", "RESULTS.md", "umap.png", "report.html", "units", "predictions"}
)
_COMPARISON = frozenset({"comparison.md", "comparison.csv", "comparison.json"})
# what a folder of each kind may hold; None: any name (a model folder's files depend on the model)
ENTRIES: dict[str, frozenset[str] | None] = {
    "run": _RUN,
    "demo": _RUN | {"models"},
    "ablate": frozenset({"ablation.json", "models", "run", "RESULTS.md"}) | _COMPARISON,
    "report": frozenset({"report.html"}) | _COMPARISON,
    "finetune": None,
    "synth": None,
    "export": frozenset({"data", "metadata"}),  # a MEDS dataset (`clinpred export meds`)
}
# which kinds of folder a command may replace or add to (a synthetic cohort is never written over)
TAKES: dict[str, frozenset[str]] = {
    "run": frozenset({"run", "demo"}),
    "demo": frozenset({"run", "demo"}),
    "ablate": frozenset({"ablate"}),
    "report": frozenset({"report"}),
    "finetune": frozenset({"finetune"}),
    "synth": frozenset(),
    "export": frozenset({"export"}),
}
_WHAT = {
    "run": "a run",
    "demo": "a demo run",
    "ablate": "an ablation",
    "report": "a report",
    "finetune": "a fine-tuned model",
    "synth": "a synthetic cohort",
    "export": "a MEDS export",
}
# ends the refusal of someone's folder by `clinpred finetune`
RESUME_HINT = " (--resume continues only a fine-tune that clinpred started in this folder)"
# names of source tables: a folder holding them is someone's data
_DATA_TABLE = re.compile(
    r"^(noteevents|patients|admissions|diagnoses_icd|discharge|radiology|person|note|condition_occurrence)"
    r"(\.csv|\.parquet|\.csv\.gz)$",
    re.IGNORECASE,
)


class FolderMark(BaseModel):
    """``.clinpred-run``: who wrote this folder, as what, and when."""

    written_by: Literal["clinpred"] = "clinpred"
    kind: Kind
    command: str  # the clinpred command that wrote it (`ablate` writes a `run` folder inside its own)
    created: str
    clinpred_version: str


def write_mark(folder: Path, kind: Kind, command: str | None = None) -> None:
    """Mark ``folder`` (created if needed) as one that clinpred wrote."""
    import clinpred

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark = FolderMark(
        kind=kind,
        command=command or kind,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        clinpred_version=clinpred.__version__,
    )
    write_text(folder / MARKER, mark.model_dump_json(indent=2) + "\n")


def read_mark(folder: Path) -> FolderMark | None:
    """The folder's mark, or None when there is none (or it does not read as one)."""
    try:
        return FolderMark.model_validate_json((Path(folder) / MARKER).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def folder_kind(folder: Path) -> str | None:
    """What clinpred wrote in ``folder``: its mark, or what an earlier version left; None if not clinpred's."""
    folder = Path(folder)
    mark = read_mark(folder)
    if mark is not None:
        return mark.kind
    if read_results(folder) is not None:
        return "demo" if (folder / "models" / "generator.json").is_file() else "run"
    stamp = _json(folder / "models" / "generator.json")  # a demo cut off before its results.json
    if isinstance(stamp, dict) and "generator" in stamp and not (folder / "ablation.json").exists():
        return "demo"
    ablation = _json(folder / "ablation.json")
    if isinstance(ablation, dict) and {"data", "recipes"} <= set(ablation):
        return "ablate"
    comparison = _json(folder / "comparison.json")
    if isinstance(comparison, dict) and {"runs", "metrics", "differences"} <= set(comparison):
        return "report"
    record = _json(folder / "clinpred-finetune.json")
    if isinstance(record, dict) and record.get("kind") == "clinpred-finetune":
        return "finetune"
    if any((folder / "checkpoints").glob("checkpoint-*/trainer_state.json")):  # an interrupted fine-tune
        return "finetune"
    seal = _json(folder / "CLINPRED_SYNTHETIC.json")
    if isinstance(seal, dict) and seal.get("generator") == "clinpred.data.synthetic":
        return "synth"
    return None


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _data_tables(folder: Path) -> list[str]:
    found = [p.name for p in folder.iterdir() if _DATA_TABLE.match(p.name)]
    found += [f"{d}/" for d in ("hosp", "note") if (folder / d).is_dir()]
    return sorted(found)


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_output_folder(
    path: Path,
    kind: Kind,
    *,
    option: str = "--out",
    inputs: Sequence[tuple[str, Path | None]] = (),
    hint: str = "",
) -> Path:
    """Refuse an output folder that clinpred may not write ``kind`` into; returns it resolved.

    Allowed: a new path, an empty folder, or a folder that clinpred marked as a kind this command
    replaces or adds to (``TAKES``), holding nothing else than what that kind of folder holds. Refused,
    with exit 2 and what is there: a folder of someone's files or data, another kind of clinpred folder,
    an output equal to, inside or holding one of ``inputs`` (the data, the runs a report reads), and,
    for a folder replaced whole, the current directory. ``hint`` ends the refusal of a foreign folder.
    """
    path = Path(path)
    check_directory_path(path, option=option)
    if path.is_symlink() and not path.exists():
        raise InputError(
            f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist. "
            "Give an existing folder or a new path."
        )
    real = path.resolve()
    for name, given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if _inside(real, source):
            where = "is" if real == source else "lies inside"
            raise InputError(
                f"{option} {path} {where} {name} {given}: clinpred never writes into what it reads. "
                "Choose a directory outside it."
            )
        if _inside(source, real):
            raise InputError(
                f"{option} {path} holds {name} {given}: clinpred never writes over what it reads. "
                "Choose a directory outside it."
            )
    # clinpred's own temporaries (``.NAME.<pid>.tmp*``: a report being staged) are not contents
    present = sorted(p.name for p in path.iterdir() if not _TEMPORARY.match(p.name)) if path.is_dir() else []
    if present:
        _check_contents(path, kind, present, option=option, hint=hint)
    if kind in ("run", "demo", "synth", "export") and _inside(Path.cwd().resolve(), real):
        raise InputError(
            f"{option} {path} is the current directory (or holds it): this folder is written whole and "
            f"then renamed into place, which the directory you are in cannot be. Give a new folder, e.g. "
            f"{option} {'data/synth' if kind == 'synth' else 'runs/NAME'}."
        )
    return real


def _check_contents(path: Path, kind: Kind, present: list[str], *, option: str, hint: str) -> None:
    """Refuse a non-empty folder that is not clinpred's ``kind`` to take, or holds someone's files too."""
    found = folder_kind(path)
    if found is None:
        tables = _data_tables(path)
        if tables:
            raise InputError(
                f"{option} {path} is not empty: it is a data folder ({_names(tables)}) that clinpred did not "
                "write, and clinpred never writes into your data. Choose a new directory."
            )
        raise InputError(
            f"{option} {path} is not empty and holds files that clinpred did not write ({_names(present)}): "
            f"nothing there is replaced or deleted. Choose a new directory or empty this one{hint}."
        )
    if found not in TAKES[kind]:
        mark = read_mark(path)
        by = f" (written by `clinpred {mark.command}`)" if mark is not None else ""
        if found == "synth":
            raise InputError(
                f"{option} {path} is not empty: it holds a synthetic cohort{by}, a data folder that "
                f"`clinpred {kind}` did not write and never writes into. Choose a new directory."
            )
        raise InputError(
            f"{option} {path} is not empty: it holds {_WHAT[found]}{by}, which `clinpred {kind}` did not "
            "write and does not replace or mix its files into. Choose a new directory."
        )
    allowed = ENTRIES[found]
    if allowed is not None:
        foreign = [n for n in present if n not in allowed and n != MARKER and not _TEMPORARY.match(n)]
        if foreign:
            raise InputError(
                f"{option} {path} holds {_WHAT[found]} and also files that clinpred did not write "
                f"({_names(foreign)}): nothing there is replaced or deleted. Move them out or choose a new "
                "directory."
            )


def mark_output_folder(
    path: Path,
    kind: Kind,
    *,
    command: str | None = None,
    inputs: Sequence[tuple[str, Path | None]] = (),
    hint: str = "",
) -> Path:
    """Check ``path`` for ``kind``, create it and mark it (a folder filled in place: demo, ablate, report)."""
    real = check_output_folder(path, kind, inputs=inputs, hint=hint)
    try:
        write_mark(real, kind, command)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write here ({exc.strerror}).") from None
    return real


@contextlib.contextmanager
def replace_run_folder(
    path: str | Path,
    kind: Kind = "run",
    *,
    command: str | None = None,
    keep: tuple[str, ...] = (),
    inputs: Sequence[tuple[str, Path | None]] = (),
) -> Iterator[Path]:
    """Yield a marked temporary sibling folder to fill; on success it replaces ``path`` whole.

    ``path`` must pass ``check_output_folder`` when this starts and again just before the swap (a file
    put there meanwhile is not deleted). An earlier clinpred folder there is replaced entirely (no file
    of it survives) except the entries named in ``keep`` (the demo's fine-tuned models), which are
    moved into the new folder. A symbolic link is followed: the folder it points to is replaced. On
    failure or interrupt the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    real = check_output_folder(path, kind, inputs=inputs)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(real.parent)
        tmp = temporary_directory(real)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write here ({exc.strerror}).") from None
    try:
        write_mark(tmp, kind, command)
        yield tmp
        raise_if_interrupted()  # an interrupt that was lost on its way (clinpred.interrupts)
        check_output_folder(path, kind, inputs=inputs)  # nothing of someone else's arrived meanwhile
        carried = [name for name in keep if (real / name).exists() and not (tmp / name).exists()]
        for name in carried:
            os.replace(real / name, tmp / name)
        old = None
        try:
            if real.exists():
                old = temporary_directory(real)
                os.replace(real, old / "previous")
                os.replace(tmp, real)
                shutil.rmtree(old, ignore_errors=True)  # clinpred's earlier folder, checked above
            else:
                os.replace(tmp, real)
        except BaseException:
            if old is not None and (old / "previous").is_dir() and not real.exists():
                os.replace(old / "previous", real)  # the swap failed half-way: the earlier folder returns
                old.rmdir()
            for name in carried:  # put back what was carried, so a failed swap loses nothing
                if (tmp / name).exists() and real.is_dir():
                    os.replace(tmp / name, real / name)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder


@contextlib.contextmanager
def fill_folder_whole(
    path: str | Path, kind: Kind, *, inputs: Sequence[tuple[str, Path | None]] = ()
) -> Iterator[Path]:
    """Yield a temporary folder inside ``path`` to write a folder's files to; on success they move in.

    For a folder filled in place rather than replaced whole (a report: ``--out .`` is allowed), so that
    a failure half-way (a full disk, ``ulimit -f``, an interrupt) leaves ``path`` as it was: no mark and
    no part of a report in a folder that had none, and an earlier report's files not mixed with part of
    a new one. The moves at the end are renames within one folder, which need no room.
    """
    path = Path(path)
    real = check_output_folder(path, kind, inputs=inputs)
    created = not real.exists()
    try:
        real.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(real)
        tmp = temporary_directory(real / kind)
    except OSError as exc:
        if created and real.is_dir() and not any(real.iterdir()):
            real.rmdir()
        raise InputError(f"--out {path}: cannot write here ({exc.strerror}).") from None
    try:
        write_mark(tmp, kind)
        yield tmp
        raise_if_interrupted()  # an interrupt that was lost on its way (clinpred.interrupts)
        check_output_folder(path, kind, inputs=inputs)  # nothing of someone else's arrived meanwhile
        for entry in sorted(tmp.iterdir(), key=lambda p: p.name == MARKER):  # the mark last
            os.replace(entry, real / entry.name)
    except OSError as exc:  # a full disk or ulimit -f: named by where the file was going
        if exc.filename and Path(exc.filename).is_relative_to(tmp):
            exc.filename = str(path / Path(exc.filename).relative_to(tmp))
        _discard(tmp, real, created)
        raise
    except BaseException:
        _discard(tmp, real, created)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _discard(tmp: Path, real: Path, created: bool) -> None:
    """What a failed fill wrote: its staging folder, and the folder itself when it made it."""
    shutil.rmtree(tmp, ignore_errors=True)
    if created and real.is_dir() and not any(real.iterdir()):
        real.rmdir()
