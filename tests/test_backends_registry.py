"""The registry: built-ins by name, settings validated, third-party backends through real entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from clinpred.backends import create_backend, list_backends, parse_settings
from clinpred.errors import InputError

TOY_PACKAGE = '''
"""A third-party backend, installed through the clinpred.backends entry-point group."""
import hashlib
import numpy as np

class ToyBackend:
    name = "toy"

    def __init__(self, dim=8, salt="a"):
        self.dim = int(dim)
        self.salt = salt

    @staticmethod
    def status():
        return True, "toy backend from an installed package"

    def fingerprint(self):
        return f"toy:{self.dim}:{self.salt}"

    def embed(self, texts, *, role="document"):
        rows = []
        for text in texts:
            digest = hashlib.sha256(f"{self.salt}{role}{text}".encode()).digest()
            rows.append(np.frombuffer(digest[: self.dim], dtype=np.uint8).astype(np.float32) + 1.0)
        rows = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
'''


def _install_toy(site: Path) -> Path:
    """A real installed distribution: package + .dist-info with entry_points.txt, on a path entry."""
    (site / "toyclin").mkdir(parents=True)
    (site / "toyclin" / "__init__.py").write_text(TOY_PACKAGE)
    dist = site / "toyclin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyclin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [clinpred.backends]
            toy = toyclin:ToyBackend
            broken = toyclin_missing_module:Nothing
            tfidf = toyclin:ToyBackend
            """
        )
    )
    return site


@pytest.fixture
def toy_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = _install_toy(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_built_ins_are_listed_with_reasons():
    rows = {row.name: row for row in list_backends()}
    assert {"gemma-base", "gemma-finetuned", "sentence-transformers", "tfidf", "openai"} <= set(rows)
    assert rows["tfidf"].available and rows["tfidf"].source == "built-in"
    for row in rows.values():
        if not row.available:
            assert row.reason  # every unavailable backend says why


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(InputError, match=r"unknown backend 'nope'.*tfidf"):
        create_backend("nope", {})


def test_bad_settings_name_the_setting():
    with pytest.raises(InputError, match="n_components") as info:
        create_backend("tfidf", {"n_components": "0"})
    assert "tfidf" in str(info.value)
    with pytest.raises(InputError, match="colour: Extra inputs"):
        create_backend("tfidf", {"colour": "blue"})


def test_settings_from_strings_are_converted_by_the_backend():
    backend = create_backend("tfidf", parse_settings(["n_components=3", "sublinear_tf=false"]))
    assert backend.settings.n_components == 3 and backend.settings.sublinear_tf is False
    assert parse_settings(['prompts={"a": "b"}', "model="]) == {"prompts": {"a": "b"}, "model": ""}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_settings(["truncate_dim"])


def test_entry_point_backend_is_created_and_listed(toy_site: Path):
    backend = create_backend("toy", {"dim": "6", "salt": "b"})
    vectors = backend.embed(["one", "two", "one"])
    assert vectors.shape == (3, 6) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    rows = {(row.name, row.source): row for row in list_backends()}
    assert rows[("toy", "toyclin")].available
    assert rows[("toy", "toyclin")].reason == "toy backend from an installed package"
    assert not rows[("broken", "toyclin")].available
    assert "toyclin_missing_module" in rows[("broken", "toyclin")].reason
    shadow = rows[("tfidf", "toyclin")]  # a package cannot take over a built-in name
    assert not shadow.available and "built-in" in shadow.reason
    assert type(create_backend("tfidf", {})).__name__ == "TfidfBackend"
    with pytest.raises(InputError, match=r"broken.*toyclin"):
        create_backend("broken", {})


def test_entry_point_backend_through_the_cli(toy_site: Path, cli, tmp_path: Path):
    env = {"PYTHONPATH": str(toy_site)}
    listed = cli("backends", "list", env={**env, "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if " toy " in line)
    assert "yes" in line and "toyclin" in line
    checked = cli("backends", "check", "toy", "--backend-setting", "dim=5", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "dimension 5" in checked.stdout
    bad = cli("backends", "check", "toy", "--backend-setting", "dim", env=env)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
