"""`clinpred ablate` end to end on the tiny cohort, through the installed console script."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_ablate_trains_each_recipe_once_evaluates_all_and_compares_with_the_base(cli, tmp_path):
    config = tmp_path / "ablation.toml"
    config.write_text(
        """
base_model = "bundled-minilm"
max_seq_length = 32

[data]
synthetic = "tiny"

[finetune]
max_steps = 2
batch_size = 4
save_steps = 100
eval_max_queries = 20

[recipes.seed]
preset = "seed"

[recipes.clinical-plus]
preset = "clinical"
loss = "label_aware"
pairs = { negatives = "style_matched", positives = "next_other_category" }
scale = 10.0

[tasks]
run = ["recall", "diagnosis"]
"""
    )
    out = tmp_path / "abl"
    env = {"CLINPRED_CACHE": str(tmp_path / "cache")}
    first = cli("ablate", "--config", str(config), "--out", str(out), "-q", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    results = (out / "RESULTS.md").read_text()
    for label in (
        "| base |",
        "| seed | self-supervised |",
        "| clinical-plus | **supervised** |",  # label_aware reads the fine-tuning patients' codes (rule 10)
        "recall@5",
        "patient@5",
        "Δ diagnosis macro-AUROC",
        "reg none, scale 10, lr",  # a changed temperature is named in the recipe's settings
    ):
        assert label in results
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["reference"] == "base"
    assert {d["backend"] for d in comparison["differences"]} == {"seed", "clinical-plus"}
    run_text = (out / "run" / "results.json").read_text()
    assert "site-packages" not in run_text  # the bundled base is named by its hub id, not this machine's path
    run = json.loads(run_text)
    assert [b["label"] for b in run["backends"]] == ["base", "seed", "clinical-plus"]
    records = {
        n: json.loads((out / "models" / n / "clinpred-finetune.json").read_text())
        for n in ("seed", "clinical-plus")
    }
    assert records["seed"]["config"]["phi_placeholders"] == "keep"
    assert records["clinical-plus"]["config"]["phi_placeholders"] == "mask"
    # the same fine-tuning patients for every recipe, and the run's evaluation patients held out
    hashes = {r["data"]["train_subject_ids_sha256"] for r in records.values()}
    assert len(hashes) == 1
    assert {r["data"]["evaluation_patients_held_out"] for r in records.values()} == {
        run["split"]["evaluation_patients"]
    }

    # a second call reuses both models (records match) and only re-evaluates
    stamp = (out / "models" / "seed" / "clinpred-finetune.json").stat().st_mtime_ns
    second = cli("ablate", "--config", str(config), "--out", str(out), env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "recipe seed: reused" in second.stderr and "recipe clinical-plus: reused" in second.stderr
    assert (out / "models" / "seed" / "clinpred-finetune.json").stat().st_mtime_ns == stamp

    # --recipe: only the named recipe is evaluated beside the base
    third = cli("ablate", "--config", str(config), "--out", str(out), "--recipe", "seed", "-q", env=env)
    assert third.returncode == 0, third.stderr[-3000:]
    run = json.loads((out / "run" / "results.json").read_text())
    assert [b["label"] for b in run["backends"]] == ["base", "seed"]


def test_ablate_refuses_a_foreign_out_folder(cli, tmp_path):
    config = tmp_path / "ablation.toml"
    config.write_text('[data]\nsynthetic = "tiny"\n[recipes.seed]\npreset = "seed"\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = cli("ablate", "--config", str(config), "--out", str(out))
    assert result.returncode == 2 and "notes.txt" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"


def test_ablate_names_the_recipes_when_asked_for_one_it_lacks(cli, tmp_path):
    config = tmp_path / "ablation.toml"
    config.write_text('[data]\nsynthetic = "tiny"\n[recipes.seed]\npreset = "seed"\n')
    result = cli("ablate", "--config", str(config), "--out", str(tmp_path / "out"), "--recipe", "sede")
    assert result.returncode == 2 and "'sede'" in result.stderr and "seed" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("stamp", ['{"generator": "2.1"}', None])
def test_ablate_refuses_models_of_another_synthetic_cohort(cli, tmp_path, stamp):
    """A recipe's record names its settings and patient ids, which a regenerated cohort keeps: without
    the generator stamp beside the models, a model of the old cohort would be reused on the new text."""
    config = tmp_path / "ablation.toml"
    config.write_text('[data]\nsynthetic = "tiny"\n[recipes.seed]\npreset = "seed"\n')
    out = tmp_path / "out"
    (out / "models" / "seed").mkdir(parents=True)
    (out / "models" / "seed" / "clinpred-finetune.json").write_text('{"config": {}}')
    # an earlier ablation's folder (its ablation.json); a folder of models alone would be someone's
    (out / "ablation.json").write_text(json.dumps({"data": {"synthetic": "tiny"}, "recipes": {"seed": {}}}))
    if stamp is not None:
        (out / "models" / "generator.json").write_text(stamp)
    result = cli("ablate", "--config", str(config), "--out", str(out), env={"CLINPRED_CACHE": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("generator 2.1" if stamp else "no generator.json") in result.stderr
    assert "remove it or use another --out" in result.stderr and "Traceback" not in result.stderr
    assert (out / "models" / "seed" / "clinpred-finetune.json").read_text() == '{"config": {}}'
