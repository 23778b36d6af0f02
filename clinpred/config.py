"""One pydantic config for a whole experiment: data, patient split, backends, tasks.

Read from TOML (``clinpred run --config FILE``), overridden by flags, printed by ``clinpred config
show`` and saved into every run directory, so a results table can always be traced to its settings.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator

from clinpred.data.icd_versions import AmbiguityRule
from clinpred.data.meds_codes import MedsCodes
from clinpred.data.phi import PhiMode
from clinpred.data.splits import SplitConfig
from clinpred.errors import InputError
from clinpred.redaction import redact, redact_setting, remember_settings
from clinpred.tasks.registry import BUILT_INS, default_task_names, get_task, settings_name

TaskName = str  # a name in the task registry (`clinpred tasks list`), built-in or installed
TASK_NAMES: tuple[str, ...] = tuple(default_task_names())  # what runs when the config does not say
SyntheticSize = Literal["tiny", "demo", "mimic3"]


class OmopOptions(BaseModel):
    """How an OMOP CDM folder is read (``[data.omop]``; clinpred/data/omop.py says why each default)."""

    model_config = ConfigDict(extra="forbid")

    # visit_concept_ids that are hospital admissions: 9201 Inpatient Visit, 262 Emergency Room and
    # Inpatient Visit
    inpatient_visits: list[int] = Field(default_factory=lambda: [9201, 262], min_length=1)
    # a code that is both a valid ICD-9-CM and ICD-10-CM code, where no CONCEPT row says which
    icd_version_when_ambiguous: AmbiguityRule = "by_visit"


class DataConfig(BaseModel):
    """Where the cohort comes from: a MIMIC, MEDS or OMOP directory, or the embedded synthetic generator."""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = None  # a MIMIC-III directory, a MIMIC-IV root, a MEDS root or an OMOP folder
    synthetic: SyntheticSize | None = None
    synthetic_seed: int = Field(0, ge=0)
    categories: list[str] | None = None  # note categories to read (None: all)
    use_cache: bool = True  # the note cache of the readers (an Arrow file per source file)
    # MIMIC-III's [** **] de-identification placeholders: masked by kind (default) or kept as written;
    # applied to the note text before embedding (and TF-IDF fitting). DESIGN.md rule 7.
    phi_placeholders: PhiMode = "mask"
    # DESIGN.md rule 9: `run` refuses a source where a limited repair rule (clinpred/data/integrity.py)
    # repaired more than this share of its table's rows; raising it accepts the repairs (recorded)
    max_repaired_share: float = Field(0.01, ge=0, le=1)
    meds: MedsCodes = Field(default_factory=MedsCodes)  # [data.meds]: which MEDS codes are notes, diagnoses
    omop: OmopOptions = Field(default_factory=OmopOptions)  # [data.omop]

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one data source: `path` (MIMIC files) or `synthetic` (a size)")
        return self

    def describe(self) -> str:
        return (
            f"synthetic cohort '{self.synthetic}' (seed {self.synthetic_seed})"
            if self.synthetic
            else str(self.path)
        )


class BackendConfig(BaseModel):
    """One backend to evaluate: its registry name, a label for tables, and its settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str | None = None  # defaults to the name; must be unique within a run
    settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name

    @model_validator(mode="after")
    def _label_is_a_folder_name(self) -> BackendConfig:
        """The label names the backend's folder under units/: a plain name, never a path."""
        if not _LABEL.fullmatch(self.display):
            raise ValueError(
                f"backend label {self.display!r} must be a plain name (letters, digits, '.', '_', '-'; "
                "not starting with '.'): it names a folder of the run"
            )
        return self

    @model_validator(mode="after")
    def _remember_secrets(self) -> BackendConfig:
        """A key given as a setting (or inside base_url) is redacted wherever it shows up later."""
        remember_settings(self.settings)
        return self

    @field_serializer("settings", when_used="json")
    def _redact(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Secrets (an API key given as a setting, a key inside a URL) never reach config.json,
        results.json or the screen: secret-named settings are hidden whole, the others redacted by value."""
        return {k: redact_setting(k, v) for k, v in settings.items()}


_LABEL = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,79}")


class TasksConfig(BaseModel):
    """Which tasks run, and each task's settings under its own name (``[tasks.recall]``, ...).

    Tasks come from the registry (clinpred.tasks.registry): every built-in task's settings are always
    present (its defaults are leakage-safe); an installed task's settings are read from
    ``[tasks.NAME]`` when it runs or has a table, and validated by its own config model.
    """

    model_config = ConfigDict(extra="allow")

    run: list[TaskName] = Field(default_factory=default_task_names)

    @model_validator(mode="before")
    @classmethod
    def _settings_from_the_registry(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            data = data.model_dump()
        if not isinstance(data, dict):
            return data
        from pydantic_core import PydanticCustomError

        errors: list[Any] = []
        run = data.get("run", default_task_names())
        names = list(BUILT_INS)
        for i, name in enumerate(run if isinstance(run, list) else []):
            if not isinstance(name, str):
                continue  # the field's own validation says what is wrong
            try:
                get_task(name)
            except InputError as exc:
                errors.append(_error(PydanticCustomError("unknown_task", str(exc)), ("run", i), name))
                continue
            names.append(name)
        names += [k for k in data if k != "run"]
        if any(settings_name(n) != n for n in names if isinstance(n, str)):
            names.append("aces")  # ACES-config and label-folder tasks share [tasks.aces]
        names = [n for n in names if not isinstance(n, str) or settings_name(n) == n]
        out: dict[str, Any] = {"run": run} if "run" in data else {}
        for name in dict.fromkeys(names):
            try:
                model = get_task(name).config_model()
            except InputError as exc:
                errors.append(_error(PydanticCustomError("unknown_task", str(exc)), (name,), data.get(name)))
                continue
            given = data.get(name, {})
            try:
                out[name] = given if isinstance(given, model) else model.model_validate(given)
            except ValidationError as exc:
                errors += [_nested_error(e, name) for e in exc.errors()]
        _add_label_tasks(out, run if "run" in data else [], errors)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return out

    def settings(self, task: str) -> BaseModel:
        """The validated settings of a task (its config model's defaults where none were given)."""
        task = settings_name(task)
        value = (self.model_extra or {}).get(task)
        return value if isinstance(value, BaseModel) else get_task(task).config_model()()


def _add_label_tasks(out: dict[str, Any], given: Any, errors: list[Any]) -> None:
    """Each [tasks.aces] config and label folder is a task to run (clinpred.tasks.aces): added to the
    tasks given, or, where none were, the only tasks that run."""
    from pydantic_core import PydanticCustomError

    from clinpred.tasks.aces import task_names

    aces = out.get("aces")
    if not isinstance(aces, BaseModel) or not (aces.configs or aces.labels) or not isinstance(given, list):
        return
    try:
        names = task_names(aces)
    except InputError as exc:
        errors.append(_error(PydanticCustomError("aces_task", str(exc)), ("aces",), None))
        return
    out["run"] = list(dict.fromkeys([*given, *names]))


def _error(error: Any, loc: tuple[Any, ...], value: Any) -> Any:
    return {"type": error, "loc": loc, "input": value}


def _nested_error(e: Any, name: str) -> Any:
    """A task config's validation error, re-rooted under the task's name (``tasks.NAME.setting``)."""
    from pydantic_core import PydanticCustomError

    loc = (name, *e["loc"])
    # the error keeps its type and message, only its place changes
    return {"type": PydanticCustomError(e["type"], e["msg"]), "loc": loc, "input": e["input"]}


class PrivacyConfig(BaseModel):
    """Who may read what a run on credentialed notes writes (clinpred.privacy.modes, DESIGN.md rule 6)."""

    model_config = ConfigDict(extra="forbid")

    # false: owner-only (folders 0700, files 0600); true: a team under one DUA, 0750 / 0640, never more.
    # CLINPRED_SHARE_WITH_GROUP=1 does the same for every command of a shell.
    share_with_group: bool = False


class ExperimentConfig(BaseModel):
    """Everything a `clinpred run` needs; saved as config.json in the run directory."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    backends: list[BackendConfig] = Field(min_length=1)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    allow_external_api: bool = False  # send credentialed text to an external API (DESIGN.md rule 6)
    cache_dir: Path | None = (
        None  # the embedding cache; None: $CLINPRED_CACHE/embeddings (~/.cache/clinpred/embeddings)
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _unique_labels(self) -> ExperimentConfig:
        labels = [b.display for b in self.backends]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"backend labels must be unique; repeated: {', '.join(dupes)} (set `label`)")
        return self


def parse_backend(spec: str) -> BackendConfig:
    """``NAME[:key=value,key=value]`` from the command line; values parsed as TOML scalars when they can be.

    ``label`` among the keys names the backend's column in the tables.
    """
    name, _, rest = spec.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--backend {spec!r}: settings are key=value pairs separated by commas.")
        settings[key.strip()] = _scalar(value.strip())
    label = settings.pop("label", None)
    if not name.strip():
        raise InputError(f"--backend {spec!r}: give a backend name (see `clinpred backends list`).")
    try:
        return BackendConfig(
            name=name.strip(), label=None if label is None else str(label), settings=settings
        )
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InputError(f"--backend {spec!r}: {problems}") from None


def _scalar(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML config file as a dict; a user error when missing or malformed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; --config takes a TOML file.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: is not UTF-8 text; a TOML config file must be UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}).") from None


def build_config(raw: dict[str, Any], *, source: str = "the config") -> ExperimentConfig:
    """Validate a config dict; every problem becomes one user-facing message naming the setting."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"{source}: {problems}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, tables merged key by key, everything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def to_toml(config: ExperimentConfig) -> str:
    """The effective config as TOML that `--config` reads back (None values, which TOML lacks, are left out)."""
    return redact(_toml_table(config.model_dump(mode="json"), []).lstrip("\n"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
            + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_table(table: dict[str, Any], path: list[str], *, header: bool = True) -> str:
    """A table's scalars under its [header], then its sub-tables and arrays of tables."""

    def is_table_list(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    lines = [
        f"{k} = {_toml_value(v)}"
        for k, v in table.items()
        if v is not None and not isinstance(v, dict) and not is_table_list(v)
    ]
    out = "\n".join(lines)
    if header and path:
        out = f"\n[{'.'.join(path)}]\n" + out
    for key, value in table.items():
        if isinstance(value, dict):
            out += "\n" + _toml_table(value, [*path, key])
        elif is_table_list(value):
            for item in value:
                out += f"\n\n[[{'.'.join([*path, key])}]]\n" + _toml_table(
                    item, [*path, key], header=False
                ).strip("\n")
    return out


def effective_config(
    config_file: Path | None = None,
    *,
    data: Path | None = None,
    synthetic: str | None = None,
    backends: list[str] | None = None,
    tasks: list[str] | None = None,
    allow_external_api: bool = False,
    seed: int | None = None,
    aces: list[Path] | None = None,
    labels: list[Path] | None = None,
) -> ExperimentConfig:
    """Defaults, then the TOML file, then the command-line flags, validated as one config.

    ``aces`` (ACES task YAMLs) and ``labels`` (MEDS label folders) replace ``[tasks.aces]``'s lists."""
    raw: dict[str, Any] = read_toml(config_file) if config_file is not None else {}
    if data is not None or synthetic is not None:
        raw["data"] = {
            **{k: v for k, v in raw.get("data", {}).items() if k not in ("path", "synthetic")},
            **({"path": str(data)} if data is not None else {}),
            **({"synthetic": synthetic} if synthetic is not None else {}),
        }
    if backends:
        raw["backends"] = [parse_backend(b).model_dump() for b in backends]
    if tasks:
        raw = merge(raw, {"tasks": {"run": list(tasks)}})
    for setting, paths in (("configs", aces), ("labels", labels)):
        if paths:
            raw = merge(raw, {"tasks": {"aces": {setting: [str(p) for p in paths]}}})
    if allow_external_api:
        raw["allow_external_api"] = True
    if seed is not None:
        raw = merge(raw, {"split": {"seed": seed}})
    if "data" not in raw:
        raise InputError(
            "no data source: give --data PATH (MIMIC files) or --synthetic SIZE (tiny, demo, mimic3)."
        )
    if not raw.get("backends"):
        raise InputError("no backend: give --backend NAME at least once (see `clinpred backends list`).")
    return build_config(raw, source=str(config_file) if config_file else "the command line")
