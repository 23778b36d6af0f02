"""A fine-tuned model folder is one a user uploads as it is (issue 26), and results.json names no folder
of this machine: run as a user would, the installed `clinpred` on the bundled MiniLM."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

from clinpred.finetune.model_names import MINILM_HUB_ID, shareable_name
from clinpred.finetune.output import privacy_section, training_data_section

MB = 1024 * 1024


def toy_pairs(n_groups: int = 10) -> pd.DataFrame:
    words = "fever cough sepsis insulin heparin stroke renal liver cardiac wound pain lungs".split()
    rows = [
        {
            "anchor": f"note {j} patient {g}: {words[g]}",
            "positive": f"note {j + 1}: {words[g + 1]}",
            "group": g,
        }
        for g in range(n_groups)
        for j in range(2)
    ]
    return pd.DataFrame(rows)


def machine_paths(*extra: Path) -> list[str]:
    """Absolute paths of this machine a shared file must not hold."""
    paths = {sysconfig.get_paths()["purelib"], str(Path(__file__).resolve().parents[1])}
    return sorted(paths | {str(p) for p in extra})


def text_files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` that reads as text (weights do not), by relative name."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                found[str(path.relative_to(folder))] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return found


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path):
    """`clinpred finetune --pairs` on the bundled MiniLM, 2 steps, a checkpoint at each step."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("share")
    pairs = root / "pairs.csv"
    toy_pairs().to_csv(pairs, index=False)
    config = root / "ft.toml"
    config.write_text("save_steps = 1\nlogging_steps = 1\n")
    common = ["--pairs", str(pairs), "--base", str(minilm_path), "--config", str(config), "--max-steps", "2"]
    common += ["--batch-size", "4", "--max-seq-length", "16", "--quiet"]
    env = {"CLINPRED_CACHE": str(root / "cache")}
    proc = run_cli("finetune", *common, "--out", str(root / "model"), env=env)
    assert proc.returncode == 0, proc.stderr
    return root, common, env


def test_the_model_folder_loads_in_plain_sentence_transformers_and_holds_no_path(finetuned, minilm_path):
    from sentence_transformers import SentenceTransformer

    root, _, _ = finetuned
    out = root / "model"
    vector = SentenceTransformer(str(out)).encode(["fever and cough"])
    assert vector.shape == (1, 384)
    texts = text_files(out)
    assert {"README.md", "clinpred-finetune.json", "modules.json", "config.json"} <= set(texts)
    for name, text in texts.items():
        for path in machine_paths(root, minilm_path):
            assert path not in text, f"{name} names {path}"
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 100 * MB


def test_checkpoints_are_written_beside_the_model_and_removed_at_the_end(finetuned):
    root, _, _ = finetuned
    out = root / "model"
    assert not list(out.rglob("checkpoint-*")) and not (out / "checkpoints").exists()
    assert not (root / "model.checkpoints").exists()
    assert "Traceback" not in json.dumps(text_files(out))


def test_keep_checkpoints_keeps_them_beside_the_model(finetuned, cli):
    root, common, env = finetuned
    proc = cli("finetune", *common, "--out", str(root / "kept"), "--keep-checkpoints", env=env)
    assert proc.returncode == 0, proc.stderr
    kept = root / "kept.checkpoints"
    assert sorted(p.name for p in kept.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert "checkpoints kept in" in proc.stdout and str(kept) in proc.stdout
    assert not list((root / "kept").rglob("checkpoint-*"))


def test_the_card_names_the_base_by_hub_id_and_states_data_recipe_and_terms(finetuned):
    root, _, _ = finetuned
    card = (root / "model" / "README.md").read_text()
    front = card.split("---")[1]
    assert f"base_model: {MINILM_HUB_ID}\n" in front
    record = json.loads((root / "model" / "clinpred-finetune.json").read_text())
    assert record["config"]["base_model"] == record["base_model"]["id"] == MINILM_HUB_ID
    assert "path" not in record["base_model"]
    assert (
        "## Training data" in card and "20 pairs in 10 groups" in card and "treated as credentialed" in card
    )
    assert "loss: mnrl" in card and "learning rate" in card  # the recipe
    assert "may reproduce them" in card and "PhysioNet" in card


def test_the_card_says_synthetic_or_credentialed_by_the_data():
    synthetic = {"source": "mimic3", "synthetic": "tiny", "pairs": 40, "train_patients": 12}
    credentialed = {"source": "mimic4", "synthetic": None, "pairs": 40, "train_patients": 12}
    assert "synthetic cohort (`tiny`" in training_data_section(synthetic)
    assert "MIMIC-IV-Note, credentialed data" in training_data_section(credentialed)
    assert "may reproduce them" not in privacy_section({"data": synthetic})
    assert "may reproduce them" in privacy_section({"data": credentialed})


def test_base_models_are_named_as_they_travel(tmp_path, minilm_path):
    assert shareable_name(str(minilm_path)) == MINILM_HUB_ID
    assert shareable_name("google/embeddinggemma-300m") == "google/embeddinggemma-300m"
    snapshot = tmp_path / "hub" / "models--acme--clinical-embedder" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert shareable_name(str(snapshot)) == "acme/clinical-embedder"
    own = tmp_path / "my-model"
    own.mkdir()
    assert shareable_name(str(own)) == "my-model"  # an absolute folder: its name only


@pytest.mark.slow
def test_results_json_names_models_as_given_never_by_this_machine_s_paths(finetuned, cli, minilm_path):
    root, _, env = finetuned
    config = root / "tiny.toml"
    config.write_text("[tasks.recall.bootstrap]\nn_resamples = 100\n")
    proc = cli(
        "run", "--config", str(config), "--synthetic", "tiny", "-t", "recall", "--out", "run", "--quiet",
        "-b", "sentence-transformers:model=model,label=tuned,max_seq_length=32",
        "-b", f"sentence-transformers:model={MINILM_HUB_ID},label=base,max_seq_length=32",
        cwd=root, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = (root / "run" / "results.json").read_text()
    for path in machine_paths(root, minilm_path):
        assert path not in results, path
    by_label = {b["label"]: b for b in json.loads(results)["backends"]}
    assert by_label["tuned"]["status"] == by_label["base"]["status"] == "ok"
    assert by_label["tuned"]["provenance"]["record"] == "model/clinpred-finetune.json"
    assert by_label["base"]["description"]["model"] == MINILM_HUB_ID


def test_a_foreign_folder_where_the_checkpoints_go_is_refused(finetuned, cli):
    root, common, env = finetuned
    foreign = root / "other.checkpoints"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's file\n")
    proc = cli("finetune", *common, "--out", str(root / "other"), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "did not write" in proc.stderr and "other.checkpoints" in proc.stderr
    assert (foreign / "notes.txt").read_text() == "someone's file\n" and not (root / "other").exists()
