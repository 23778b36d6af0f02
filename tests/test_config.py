"""The experiment config: flags over TOML over defaults, a TOML round trip, one clear message per mistake."""

from __future__ import annotations

import tomllib

import pytest

from clinpred.config import ExperimentConfig, effective_config, parse_backend, to_toml
from clinpred.errors import InputError


def test_backend_spec_parses_settings_as_toml_scalars():
    spec = parse_backend("gemma-base:truncate_dim=256,dtype=bfloat16,label=gemma-256,chunk=true")
    assert spec.name == "gemma-base"
    assert spec.display == "gemma-256"
    assert spec.settings == {"truncate_dim": 256, "dtype": "bfloat16", "chunk": True}


@pytest.mark.parametrize("spec", ["gemma-base:truncate_dim", ":model=x", "tfidf:=3"])
def test_bad_backend_spec_is_a_user_error(spec):
    with pytest.raises(InputError, match="--backend"):
        parse_backend(spec)


def test_flags_override_the_toml_file(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        '[data]\nsynthetic = "tiny"\nsynthetic_seed = 3\n\n[split]\nseed = 7\nevaluation_fraction = 0.4\n\n'
        '[[backends]]\nname = "tfidf"\n\n[tasks]\nrun = ["recall"]\n'
    )
    cfg = effective_config(path, data=tmp_path, backends=["openai"], seed=11)
    assert cfg.data.path == tmp_path and cfg.data.synthetic is None and cfg.data.synthetic_seed == 3
    assert [b.name for b in cfg.backends] == ["openai"]
    assert cfg.split.seed == 11 and cfg.split.evaluation_fraction == 0.4
    assert cfg.tasks.run == ["recall"]


def test_toml_round_trip_keeps_every_setting(tmp_path):
    cfg = effective_config(
        synthetic="tiny", backends=["tfidf:n_components=32", "sentence-transformers:model=/m,label=st"]
    )
    text = to_toml(cfg)
    tomllib.loads(text)  # valid TOML
    path = tmp_path / "again.toml"
    path.write_text(text)
    again = effective_config(path)
    assert again == cfg
    assert isinstance(again, ExperimentConfig)


def test_mistakes_name_the_setting(tmp_path):
    with pytest.raises(InputError, match="no data source"):
        effective_config(backends=["tfidf"])
    with pytest.raises(InputError, match="no backend"):
        effective_config(synthetic="tiny")
    with pytest.raises(InputError, match=r"data\.synthetic"):
        effective_config(synthetic="huge", backends=["tfidf"])
    with pytest.raises(InputError, match="labels must be unique"):
        effective_config(synthetic="tiny", backends=["tfidf", "tfidf"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(InputError, match="not valid TOML"):
        effective_config(bad)
    with pytest.raises(InputError, match="no such config file"):
        effective_config(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text('[data]\nsynthetic = "tiny"\n[[backends]]\nname = "tfidf"\n[tasks.recall]\ntop_kk = 3\n')
    with pytest.raises(InputError, match=r"tasks\.recall\.top_kk"):
        effective_config(typo)
