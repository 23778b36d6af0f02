"""The task registry: built-ins declared once, third-party tasks through real ``clinpred.tasks`` entry points."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from clinpred.config import TasksConfig, build_config, to_toml
from clinpred.errors import InputError
from clinpred.tasks.registry import BUILT_INS, default_task_names, get_task, list_tasks, task_order

TOY_TASK = '''
"""A third-party task, installed through the clinpred.tasks entry-point group."""
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from clinpred.tasks.registry import TaskSpec
from clinpred.tasks.result import BootstrapScheme, TaskResult, bootstrap_metrics


class NoteCountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_notes: int = Field(1, ge=1)
    bootstrap: BootstrapScheme = Field(default_factory=lambda: BootstrapScheme(n_resamples=20))


def metrics_from_units(units):
    return {"norm_notes_corr": float(np.corrcoef(units["norm"], units["notes"])[0, 1]) if len(units) > 2 else float("nan")}


def evaluate(cohort, embeddings, *, config):
    notes = cohort.notes.assign(norm=np.linalg.norm(embeddings, axis=1))
    per = notes.groupby("subject_id").agg(notes=("norm", "size"), norm=("norm", "mean")).reset_index()
    units = per[per["notes"] >= config.min_notes].reset_index(drop=True)
    return TaskResult(
        task="note-count",
        main_metric="norm_notes_corr",
        definition={**config.model_dump(), "target": "notes per patient, against the mean embedding norm"},
        counts={"patients": len(units)},
        metrics=bootstrap_metrics(units, metrics_from_units, config.bootstrap),
        bootstrap=config.bootstrap,
    ).with_units(units)


TASK = TaskSpec(
    name="note-count",
    title="Notes per patient",
    description="A toy task from an installed package.",
    unit="patient",
    main_metric="norm_notes_corr",
    config=NoteCountConfig,
    evaluate=evaluate,
    metrics_from_units=metrics_from_units,
)
NOT_A_TASK = 42
'''


def _install_toy(site: Path) -> Path:
    """A real installed distribution: module + .dist-info with entry_points.txt, on a path entry."""
    site.mkdir(parents=True)
    (site / "toytask.py").write_text(TOY_TASK)
    dist = site / "toytask-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toytask\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [clinpred.tasks]
            note-count = toytask:TASK
            broken = toytask_missing_module:TASK
            wrong = toytask:NOT_A_TASK
            recall = toytask:TASK
            """
        )
    )
    return site


@pytest.fixture
def toy_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = _install_toy(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_built_ins_are_declared_once_and_resolve():
    assert default_task_names() == ["recall", "diagnosis", "survival", "geometry"]
    assert TasksConfig().run == default_task_names()
    for name, spec in BUILT_INS.items():
        assert spec.name == name and spec.description and spec.unit in ("query", "patient", "admission")
        assert callable(spec.metric_fn()) and isinstance(spec.config_model()(), object)
        assert spec.direction(spec.main_metric) == "higher"
    assert get_task("mortality").unit == "admission" and not get_task("mortality").default
    with pytest.raises(InputError, match=r"unknown task 'nope'.*mortality.*readmission"):
        get_task("nope")


def test_config_reads_task_settings_from_the_registry():
    base = {"data": {"synthetic": "tiny"}, "backends": [{"name": "tfidf"}]}
    cfg = build_config({**base, "tasks": {"run": ["mortality"], "readmission": {"days": 7}}})
    assert cfg.tasks.settings("readmission").days == 7 and cfg.tasks.settings("recall").pool == "all"
    assert build_config(__import__("tomllib").loads(to_toml(cfg))) == cfg  # written TOML reads back
    with pytest.raises(InputError, match=r"tasks\.mortality\.window_hours: Input should be greater than 0"):
        build_config({**base, "tasks": {"mortality": {"window_hours": 0}}})
    with pytest.raises(InputError, match=r"tasks\.run\.0: unknown task 'mortalty'"):
        build_config({**base, "tasks": {"run": ["mortalty"]}})
    with pytest.raises(InputError, match=r"tasks\.colour: unknown task 'colour'"):
        build_config({**base, "tasks": {"colour": {}}})


def test_entry_point_tasks_are_listed(toy_site: Path):
    rows = {(row.name, row.source): row for row in list_tasks()}
    toy = rows[("note-count", "toytask")]
    assert toy.available and toy.description == "A toy task from an installed package." and not toy.default
    assert "toytask_missing_module" in rows[("broken", "toytask")].reason
    assert "not a clinpred.tasks.registry.TaskSpec" in rows[("wrong", "toytask")].reason
    assert "built-in" in rows[("recall", "toytask")].reason  # a package cannot take over a built-in name
    assert get_task("recall") is BUILT_INS["recall"]
    assert get_task("note-count").title == "Notes per patient"
    with pytest.raises(InputError, match=r"broken.*toytask"):
        get_task("broken")
    assert task_order(["note-count", "geometry", "recall"]) == ["recall", "geometry", "note-count"]


def test_tasks_list_says_how_to_run_aces_and_label_tasks(cli, tmp_path: Path):
    listed = cli("tasks", "list", env={"COLUMNS": "400", "CLINPRED_CACHE": str(tmp_path / "cache")})
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "aces.<stem>, labels.<folder>" in line)
    cells = [c.strip() for c in line.split("│")]
    assert cells[2:6] == ["label", "auroc", "no", "built-in"]  # never run by default
    assert "--aces FILE|inhospital_mortality|readmission_30d" in line and "--labels DIR" in line
    assert "[tasks.aces]" in line and "Shipped configs: inhospital_mortality, readmission_30d." in line
    shipped = Path(__file__).parent.parent / "clinpred" / "tasks" / "aces_configs"
    assert sorted(p.stem for p in shipped.glob("*.yaml")) == ["inhospital_mortality", "readmission_30d"]


def test_entry_point_task_through_the_cli(toy_site: Path, cli, tmp_path: Path):
    env = {"PYTHONPATH": str(toy_site), "CLINPRED_CACHE": str(tmp_path / "cache"), "COLUMNS": "250"}
    listed = cli("tasks", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "note-count" in line)
    assert "toytask" in line and "A toy task from an installed package." in line

    config = tmp_path / "run.toml"
    config.write_text('[tasks.note-count]\nmin_notes = 2\n[tasks.recall]\npool = "all"\n')
    out = tmp_path / "run"
    args = ("run", "--synthetic", "tiny", "--backend", "tfidf", "--config", str(config), "--quiet")
    proc = cli(*args, "--task", "note-count", "--task", "recall", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    backend = results["backends"][0]
    assert set(backend["results"]) == {"note-count", "recall"}
    assert backend["results"]["note-count"]["definition"]["min_notes"] == 2
    assert results["config"]["tasks"]["note-count"]["min_notes"] == 2
    assert (out / "units" / "tfidf" / "note-count.parquet").is_file()
    md = (out / "RESULTS.md").read_text()
    assert "| note-count | norm_notes_corr |" in md and "### Notes per patient" in md
    assert "Notes per patient" in (out / "report.html").read_text()

    report = cli("report", str(out), "--out", str(tmp_path / "report"), env=env)
    assert report.returncode == 0, report.stderr
    assert "note-count" in (tmp_path / "report" / "comparison.md").read_text()

    bad = tmp_path / "bad.toml"
    bad.write_text("[tasks.note-count]\nmin_notes = 0\n")
    refused = cli(
        *args[:-3], "--config", str(bad), "--task", "note-count", "--out", str(tmp_path / "x"), env=env
    )
    assert refused.returncode == 2 and "tasks.note-count.min_notes" in refused.stderr
    assert "Traceback" not in refused.stderr
    # without the package: the task is unknown, said in one line
    missing = cli(
        *args,
        "--task",
        "note-count",
        "--out",
        str(tmp_path / "y"),
        env={"CLINPRED_CACHE": env["CLINPRED_CACHE"]},
    )
    assert missing.returncode == 2 and "unknown task 'note-count'" in missing.stderr
