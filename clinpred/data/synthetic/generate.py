"""The entry point: write a whole synthetic cohort in MIMIC-III v1.4 format, deterministically.

Two passes over the patients. The first simulates every trajectory (cheap: no text) to write the
small tables and to count each chunk's notes, so that ROW_IDs are sequential. The second writes the
notes, chunk by chunk, in worker processes: each patient is re-simulated from its own random stream,
so the result does not depend on the number of workers. Everything is written into a temporary
sibling directory that is renamed into place at the end: a cohort appears whole or not at all.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinpred.data.synthetic import content as c
from clinpred.data.synthetic.caregivers import ROLES, Style, make_caregivers, role_of
from clinpred.data.synthetic.conditions import BY_KEY, CONDITIONS, FILLERS
from clinpred.data.synthetic.notes import DESCRIPTIONS, write_note
from clinpred.data.synthetic.patient import Admission, Density, Patient, simulate
from clinpred.data.synthetic.writer import (
    ADMISSIONS_COLUMNS,
    D_ICD_COLUMNS,
    DIAGNOSES_COLUMNS,
    NOTEEVENTS_COLUMNS,
    PATIENTS_COLUMNS,
    MemberWriter,
    concatenate,
    fmt_date,
    fmt_time,
    header_line,
    write_table,
)
from clinpred.data.synthetic_seal import MARKER as SYNTHETIC_MARKER
from clinpred.data.synthetic_seal import write_seal
from clinpred.errors import InputError
from clinpred.temporaries import remove_stale_temporaries, temporary_directory

GENERATOR_VERSION = "2.3"
Size = Literal["tiny", "demo", "mimic3"]
# size -> number of patients: the demo's 2,000 give 1,000 evaluation patients (the split's 50%) and,
# at about a quarter dying within a year, well over 150 deaths within the survival horizon among them
SIZES: dict[str, int] = {"tiny": 40, "demo": 2000, "mimic3": 46_520}
# size -> how many notes a stay gets. mimic3 has MIMIC-III's density (about 45 notes per patient, about
# 2M notes in all); the demo is compact (about 6 notes per patient, most in the first two days of a
# short stay) so that embedding 1,000 evaluation patients twice fits its time budget
DENSITIES: dict[str, Density] = {
    "tiny": Density(notes_per_admission=11.0, outpatient_per_year=0.4),
    "demo": Density(notes_per_admission=4.0, outpatient_per_year=0.15),
    "mimic3": Density(notes_per_admission=34.0, outpatient_per_year=1.2),
}
# MIMIC-III v1.4 NOTEEVENTS by CATEGORY (DESIGN.md; 2,083,180 notes). Discharge summaries come one per
# admission (59,652 for 58,976 admissions); the other categories are drawn in these proportions.
MIMIC3_NOTE_COUNTS: dict[str, int] = {
    "Nursing/other": 822_497,
    "Radiology": 522_279,
    "Nursing": 223_556,
    "ECG": 209_051,
    "Physician ": 141_624,
    "Discharge summary": 59_652,
    "Echo": 45_794,
    "Respiratory ": 31_739,
    "Nutrition": 9_418,
    "General": 8_301,
    "Rehab Services": 5_431,
    "Social Work": 2_670,
    "Case Management ": 967,
    "Pharmacy": 103,
    "Consult": 98,
}
# the share of each category among the notes that are not discharge summaries: the target the tests check
_OTHER = {k: v for k, v in MIMIC3_NOTE_COUNTS.items() if k != "Discharge summary"}
TARGET_NOTE_MIX: dict[str, float] = {k: v / sum(_OTHER.values()) for k, v in _OTHER.items()}
CAREVUE_SHARE = 0.6  # admissions charted in CareVue (2001-2008) rather than Metavision (2008-2012)
_ERA_ONLY = {"carevue": ("Nursing/other",), "metavision": ("Nursing", "Physician ")}


def _era_mix() -> dict[str, dict[str, float]]:
    """Per era, category weights whose CAREVUE_SHARE-weighted mean is TARGET_NOTE_MIX: Nursing/other is
    the older free-text charting (CareVue), Nursing and Physician notes the newer (Metavision)."""
    share = {"carevue": CAREVUE_SHARE, "metavision": 1.0 - CAREVUE_SHARE}
    shared = {k: v for k, v in TARGET_NOTE_MIX.items() if k not in sum(_ERA_ONLY.values(), ())}
    mixes = {}
    for era, own in _ERA_ONLY.items():
        mix = {k: TARGET_NOTE_MIX[k] / share[era] for k in own}
        room = 1.0 - sum(mix.values())
        mix.update({k: v / sum(shared.values()) * room for k, v in shared.items()})
        mixes[era] = mix
    return mixes


ERA_MIX: dict[str, dict[str, float]] = _era_mix()
DATE_ONLY = frozenset({"Discharge summary", "ECG", "Echo"})
TEAM_SIZE = {"nurse": 3, "physician": 2, "radiologist": 3, "cardiologist": 2, "attending": 1}
OUTPATIENT_MIX = {"Radiology": 0.6, "ECG": 0.3, "Echo": 0.1}
# chance that a note shows each condition its stay charts (2.2: 0.3 of every active one). A charted
# problem runs through most of a stay's notes, copied forward in the problem list and the nursing
# care plan; 2.3 charts fewer conditions (content.CHARTED) and shows each in about half the notes.
EVIDENCE_SHARE = 0.45
MIMIC_SHARE = 0.5  # chance that a note shows evidence suggestive of a random condition, present or not
ERROR_RATE = 0.002  # ISERROR='1' notes


class SynthConfig(BaseModel):
    """Every setting of one generated cohort."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Size | None = "tiny"
    patients: int = Field(gt=0)
    seed: int = 0
    notes_per_admission: float = Field(gt=0)
    outpatient_per_year: float = Field(ge=0)
    chunk_patients: int = Field(default=1000, gt=0)
    workers: int = Field(default=2, gt=0)
    gzip_level: int = Field(default=1, ge=1, le=9)

    @classmethod
    def build(
        cls, size: Size | None = "tiny", patients: int | None = None, seed: int = 0, **kw: object
    ) -> SynthConfig:
        if size is not None and size not in SIZES:
            raise InputError(
                f"unknown size {size!r}: choose one of {', '.join(SIZES)}, or give --patients N."
            )
        if patients is None and size is None:
            raise InputError("give a size (tiny, demo, mimic3) or a number of patients.")
        if patients is not None and patients < 1:
            raise InputError(f"--patients must be at least 1 (got {patients}).")
        density = DENSITIES[size or "demo"]
        return cls(
            size=size,
            patients=patients if patients is not None else SIZES[size],  # type: ignore[index]
            seed=seed,
            notes_per_admission=density.notes_per_admission,
            outpatient_per_year=density.outpatient_per_year,
            **kw,  # type: ignore[arg-type]
        )

    @property
    def density(self) -> Density:
        return Density(self.notes_per_admission, self.outpatient_per_year)


def generate_cohort(
    out: str | Path,
    *,
    size: Size | None = "tiny",
    patients: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write a synthetic ICU cohort in MIMIC-III v1.4 format into ``out`` and return ``out``.

    ``patients`` overrides the size's number of patients (keeping its note density). ``out`` must not
    exist or be an empty directory. The same seed gives byte-identical files.
    """
    config = SynthConfig.build(size, patients, seed)
    return write_cohort(Path(out), config, progress=progress)


def _check_out(out: Path) -> None:
    """A new path or an empty folder; a cohort is never written over anything (clinpred's or not)."""
    from clinpred.run_folder import check_output_folder, folder_kind

    if out.is_dir() and any(out.iterdir()) and folder_kind(out) == "synth":
        raise InputError(
            f"{out}: already exists and is not empty (a synthetic cohort clinpred wrote). Choose a new --out "
            "directory or remove this one."
        )
    check_output_folder(out, "synth")  # a file, someone's folder, a dangling link, the current directory


def _prepare(out: Path) -> Path:
    _check_out(out)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(parent)  # a cohort (note text) half-written by a killed generator
        tmp = temporary_directory(parent / out.name)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the cohort gets the usual permissions
        return tmp
    except OSError as exc:
        raise InputError(
            f"{out}: cannot write here ({exc.strerror}). Choose a writable --out directory."
        ) from None


def write_cohort(out: Path, config: SynthConfig, *, progress: bool = False) -> Path:
    """Write the cohort described by ``config``; see ``generate_cohort``."""
    tmp = _prepare(out)
    try:
        counts = _write_small_tables(tmp, config)
        _write_notes(tmp, config, counts, progress=progress)
        description = {
            "generator": "clinpred.data.synthetic",
            "version": GENERATOR_VERSION,
            "size": config.size,
            "patients": config.patients,
            "seed": config.seed,
        }
        write_seal(tmp, description)  # last: lists and seals exactly the files written
        _put_in_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder
        raise
    return out


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished cohort to ``out``, which must still be missing or empty.

    Two generators started at once into one folder both pass the first check; the second to finish
    finds ``out`` filled. It then leaves the folder as the first wrote it: the same cohort when the
    settings were the same (the generator is deterministic), else an error that says so.
    """
    real = out.resolve()
    try:
        if real.is_dir() and not any(real.iterdir()):
            real.rmdir()  # empty, checked before generating
        os.replace(tmp, real)
        return
    except OSError as exc:
        if not (real.is_dir() and any(real.iterdir())):
            raise InputError(f"{out}: cannot write here ({exc.strerror}).") from None
    ours, theirs = (tmp / SYNTHETIC_MARKER).read_bytes(), real / SYNTHETIC_MARKER
    if theirs.is_file() and theirs.read_bytes() == ours:
        shutil.rmtree(tmp, ignore_errors=True)  # our own copy of what is already there
        return  # another generator wrote this same cohort meanwhile: the files are byte-identical
    raise InputError(
        f"{out}: another process wrote into this folder while the cohort was generated; nothing of it was "
        "replaced. Choose a new --out directory."
    )


# ---- the small tables ----------------------------------------------------------------------------


def _patient_row(p: Patient) -> tuple:
    return (
        p.index + 1,
        p.subject_id,
        p.gender,
        fmt_time(p.dob),
        fmt_time(p.dod),
        fmt_time(p.dod_hosp.replace(hour=0, minute=0, second=0) if p.dod_hosp else None),
        fmt_time(p.dod_ssn),
        "1" if p.dod is not None else "0",
    )


def _admission_row(p: Patient, a: Admission, row_id: int, rng: random.Random) -> tuple:
    first = BY_KEY[a.active[0]]
    emergency = a.admission_type != "ELECTIVE"
    ed_in = a.admit - timedelta(hours=rng.randint(2, 9)) if emergency else None
    return (
        row_id,
        p.subject_id,
        a.hadm_id,
        fmt_time(a.admit),
        fmt_time(a.disch),
        fmt_time(a.disch if a.died else None),
        a.admission_type,
        "EMERGENCY ROOM ADMIT" if emergency else "PHYS REFERRAL/NORMAL DELI",
        "DEAD/EXPIRED"
        if a.died
        else rng.choice(("HOME", "HOME HEALTH CARE", "SNF", "REHAB/DISTINCT PART HOSP")),
        rng.choice(("Medicare", "Medicare", "Private", "Medicaid")),
        rng.choice(("ENGL", "ENGL", "", "SPAN", "PORT")),
        rng.choice(("CATHOLIC", "NOT SPECIFIED", "PROTESTANT QUAKER", "JEWISH", "")),
        rng.choice(("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "")),
        rng.choice(
            (
                "WHITE",
                "WHITE",
                "BLACK/AFRICAN AMERICAN",
                "HISPANIC OR LATINO",
                "UNKNOWN/NOT SPECIFIED",
                "ASIAN",
            )
        ),
        fmt_time(ed_in),
        fmt_time(a.admit if emergency else None),
        first.names[-1].upper(),
        "1" if a.died else "0",
        "1",
    )


def _write_small_tables(tmp: Path, config: SynthConfig) -> list[int]:
    """PATIENTS, ADMISSIONS, DIAGNOSES_ICD, D_ICD_DIAGNOSES; returns each chunk's number of notes."""
    level = config.gzip_level
    pw = MemberWriter(tmp / "PATIENTS.csv.gz", level=level, header=PATIENTS_COLUMNS)
    aw = MemberWriter(tmp / "ADMISSIONS.csv.gz", level=level, header=ADMISSIONS_COLUMNS)
    dw = MemberWriter(tmp / "DIAGNOSES_ICD.csv.gz", level=level, header=DIAGNOSES_COLUMNS)
    adm_row = dx_row = 0
    chunk_notes = [0] * _n_chunks(config)
    for i in range(config.patients):
        p = simulate(i, config.seed, config.density)
        rng = random.Random(f"tables:{config.seed}:{i}")
        pw.rows([_patient_row(p)])
        for a in p.admissions:
            adm_row += 1
            aw.rows([_admission_row(p, a, adm_row, rng)])
            rows = []
            for seq, code in enumerate(a.codes, start=1):
                dx_row += 1
                rows.append((dx_row, p.subject_id, a.hadm_id, seq, code))
            dw.rows(rows)
        chunk_notes[i // config.chunk_patients] += _n_notes(p)
    for w in (pw, aw, dw):
        w.close()
    from clinpred.data.labels import icd9_table

    table = icd9_table()
    codes = sorted(
        {code for cond in CONDITIONS for code in cond.primary_codes + cond.secondary_codes}
        | {f.code for f in FILLERS}
    )
    d_rows = []
    for k, code in enumerate(codes, start=1):
        title = str(table.at[code, "description"]) if code in table.index else code
        d_rows.append((k, code, title[:24], title))
    write_table(tmp / "D_ICD_DIAGNOSES.csv.gz", D_ICD_COLUMNS, d_rows, level=level)
    return chunk_notes


def _n_chunks(config: SynthConfig) -> int:
    return -(-config.patients // config.chunk_patients)


def _n_notes(p: Patient) -> int:
    return sum(a.n_notes for a in p.admissions) + len(p.outpatient)


# ---- the notes -----------------------------------------------------------------------------------


def _write_notes(tmp: Path, config: SynthConfig, chunk_notes: list[int], *, progress: bool) -> None:
    n_chunks = len(chunk_notes)
    header = tmp / "noteevents.header.gz"
    hw = MemberWriter(header, level=config.gzip_level)
    hw._buf.write(header_line(NOTEEVENTS_COLUMNS))
    hw.close()
    offsets = [sum(chunk_notes[:k]) for k in range(n_chunks)]
    jobs = [(config, k, offsets[k], str(tmp / f"noteevents.{k:05d}.gz")) for k in range(n_chunks)]
    workers = min(config.workers, n_chunks, os.cpu_count() or 1)
    bar = _progress_bar(progress, config.patients)
    if workers <= 1:
        for job in jobs:
            n = _write_chunk(*job)
            bar(n)
    else:
        # multiprocessing's Pool, not concurrent.futures': leaving its block terminates the workers, so
        # an interrupt stops them at once (the temporary folder is then removed) instead of waiting for
        # every chunk, and none is left behind
        with multiprocessing.Pool(workers, initializer=_worker_signals) as pool:
            for n in pool.imap(_write_chunk_star, jobs):
                bar(n)
    bar(None)
    concatenate(tmp / "NOTEEVENTS.csv.gz", [header, *[Path(j[3]) for j in jobs]])


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return lambda n: None
    from rich.progress import Progress

    prog = Progress(transient=True)
    task = prog.add_task("writing notes (patients)", total=total)
    prog.start()

    def advance(n: int | None) -> None:
        if n is None:
            prog.stop()
        else:
            prog.advance(task, n)

    return advance


def _worker_signals() -> None:
    """A worker leaves Ctrl-C to its parent and dies on SIGTERM: it must not inherit the CLI's SIGTERM
    handler, which unwinds through clean-up code meant for the parent (and can wait there forever on
    a queue nobody reads)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write_chunk_star(job: tuple) -> int:
    return _write_chunk(*job)


def _write_chunk(config: SynthConfig, chunk: int, first_row: int, path: str) -> int:
    """Write one chunk's notes as one gzip member; returns the number of patients written."""
    pools = make_caregivers(config.seed, config.patients)
    start = chunk * config.chunk_patients
    stop = min(config.patients, start + config.chunk_patients)
    writer = MemberWriter(Path(path), level=config.gzip_level)
    row_id = first_row
    for i in range(start, stop):
        p = simulate(i, config.seed, config.density)
        rows = _patient_notes(p, config, pools)
        for r in rows:
            row_id += 1
            r[0] = row_id
        writer.rows(rows)
    writer.close()
    return stop - start


def _note_row(
    p: Patient,
    hadm: int | None,
    t: datetime,
    category: str,
    description: str,
    style: Style,
    text: str,
    rng: random.Random,
) -> list:
    date_only = category in DATE_ONLY
    charted = style.cgid is not None
    return [
        0,
        p.subject_id,
        "" if hadm is None else hadm,
        fmt_date(t),
        "" if date_only else fmt_time(t),
        fmt_time(t + timedelta(minutes=rng.randint(1, 50))) if charted and not date_only else "",
        category,
        description,
        "" if style.cgid is None else style.cgid,
        "1" if rng.random() < ERROR_RATE else "",
        text,
    ]


def _patient_notes(p: Patient, config: SynthConfig, pools: dict[str, tuple[Style, ...]]) -> list[list]:
    rng = random.Random(f"text:{config.seed}:{p.index}")
    rows: list[list] = []
    for a in p.admissions:
        era = "carevue" if rng.random() < CAREVUE_SHARE else "metavision"
        mix = ERA_MIX[era]
        team = {
            role: rng.sample(pool, min(len(pool), TEAM_SIZE.get(role, 1))) for role, pool in pools.items()
        }
        span = (a.disch - a.admit).total_seconds()
        n = a.n_notes - 1  # one is the discharge summary
        fracs = sorted(rng.random() ** 1.3 for _ in range(n))
        cats = rng.choices(list(mix), weights=list(mix.values()), k=n)
        chart = c.chart_stay(p, a.active, rng)
        for frac, category in zip(fracs, cats, strict=True):
            t = a.admit + timedelta(seconds=max(600.0, min(span - 300.0, frac * span)))
            t = t.replace(second=0, microsecond=0)
            rows.append(_one_note(p, a, t, category, team, chart, rng))
        rows.append(_one_note(p, a, a.disch, "Discharge summary", team, chart, rng))
    if p.outpatient:  # clinic notes: the chronic conditions, charted as a stay's are
        chart = c.chart_stay(p, [k for k in p.conditions if BY_KEY[k].chronic], rng)
    for t in p.outpatient:
        category = rng.choices(list(OUTPATIENT_MIX), weights=list(OUTPATIENT_MIX.values()))[0]
        rows.append(_one_note(p, None, t, category, {r: rng.sample(pools[r], 1) for r in ROLES}, chart, rng))
    return rows


def _one_note(
    p: Patient,
    a: Admission | None,
    t: datetime,
    category: str,
    team: dict[str, list[Style]],
    chart: c.StayChart,
    rng: random.Random,
) -> list:
    writers = team[role_of(category)]
    style = writers[0] if rng.random() < 0.5 else rng.choice(writers)
    description = rng.choice(DESCRIPTIONS[category])
    if a is not None:
        span = max(1.0, (a.disch - a.admit).total_seconds())
        frac = (t - a.admit).total_seconds() / span
        severity = a.severity + (1 - a.severity) * frac if a.died else a.severity * (1 - 0.5 * frac)
        early = (t - a.admit) <= timedelta(hours=48)
        day = 1 + (t - a.admit).days
    else:
        severity, early, day = 0.2, False, 0
    show = c.choose_shown(chart, rng, EVIDENCE_SHARE, MIMIC_SHARE)
    ctx = c.NoteCtx(p, a, t, severity, style, rng, early, day, show, chart)
    text = write_note(category, description, ctx)
    return _note_row(p, None if a is None else a.hadm_id, t, category, description, style, text, rng)
