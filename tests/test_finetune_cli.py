"""`clinpred finetune` bad inputs: one clear message, exit code 2, no traceback, nothing trained."""

from __future__ import annotations

import pandas as pd
from mimic_files import write_mimic3


def assert_exit_2(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_pairs_file_missing_a_column(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ["a", "b"], "other": ["c", "d"]}).to_csv(pairs, index=False)
    out = tmp_path / "model"
    result = cli("finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--out", str(out), "--quiet")
    assert_exit_2(result, "missing column", "positive")
    assert not (out / "clinpred-finetune.json").exists()


def test_pairs_file_with_no_usable_rows(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.parquet"
    pd.DataFrame({"anchor": ["", "x"], "positive": ["y", "  "]}).to_parquet(pairs)
    result = cli("finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--out", str(tmp_path / "m"))
    assert_exit_2(result, "non-empty anchor and positive")


def test_pairs_file_of_unknown_type(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("anchor,positive\na,b\n")
    result = cli("finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--out", str(tmp_path / "m"))
    assert_exit_2(result, "pairs.txt", ".csv or .parquet")


def test_empty_pairs_after_filters(cli, tmp_path, minilm_path):
    data = write_mimic3(tmp_path / "m3")
    config = tmp_path / "ft.toml"
    config.write_text('[pairs]\ncategories = ["No such category"]\n')
    result = cli(
        "finetune", "--data", str(data), "--config", str(config), "--base", str(minilm_path),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_exit_2(result, "no training pairs", "pairs.categories")


def test_unknown_base_model_offline(cli, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ["a"], "positive": ["b"]}).to_csv(pairs, index=False)
    result = cli(
        "finetune", "--pairs", str(pairs), "--base", "no-such-org/no-such-model", "--out", str(tmp_path / "m"),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert_exit_2(result, "no-such-org/no-such-model", "local Hugging Face cache")


def test_out_dir_not_empty_without_resume(cli, tmp_path, minilm_path):
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ["a"], "positive": ["b"]}).to_csv(pairs, index=False)
    out = tmp_path / "model"
    out.mkdir()
    (out / "something.txt").write_text("mine")
    result = cli("finetune", "--pairs", str(pairs), "--base", str(minilm_path), "--out", str(out))
    assert_exit_2(result, str(out), "--resume")
    assert sorted(p.name for p in out.iterdir()) == ["something.txt"]


def test_exactly_one_data_source(cli, tmp_path, minilm_path):
    assert_exit_2(cli("finetune", "--base", str(minilm_path), "--out", str(tmp_path / "m")), "exactly one of")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\na,b\n")
    result = cli(
        "finetune", "--pairs", str(pairs), "--synthetic", "tiny", "--base", str(minilm_path),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_exit_2(result, "--synthetic and --pairs")


def test_bad_config_setting(cli, tmp_path, minilm_path):
    config = tmp_path / "ft.toml"
    config.write_text("batch_size = 1\n")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\na,b\n")
    result = cli(
        "finetune", "--pairs", str(pairs), "--config", str(config), "--base", str(minilm_path),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_exit_2(result, "ft.toml", "batch_size")


def test_a_bad_pairs_file_is_refused_before_torch_is_loaded(tmp_path):
    """The pairs file's columns and the recipe are checked first: torch and sentence-transformers (about
    5 s to import) are never loaded for an input that will be refused (issue 26, the waste in CI)."""
    import subprocess
    import sys

    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ["a"], "other": ["c"]}).to_csv(pairs, index=False)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from clinpred.errors import InputError\n"
        "from clinpred.finetune.command import build_config, run_finetune_command\n"
        f"kw = dict(data=None, synthetic=None, pairs=Path({str(pairs)!r}), out=Path({str(tmp_path / 'm')!r}),"
        " resume=False, progress=False)\n"
        "try:\n"
        "    run_finetune_command(config=build_config(None, {}), **kw)\n"
        "except InputError as exc:\n"
        "    print('refused:', exc)\n"
        "print('loaded:', sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "refused: pairs: missing column(s) positive" in proc.stdout, proc.stderr
    assert "loaded: []" in proc.stdout
