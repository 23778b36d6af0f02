"""`clinpred data check` prints the summary a researcher checks before a study, and never note text."""

from __future__ import annotations

from mimic_files import NOTES, write_mimic3


def test_summary_of_a_mimic3_directory(cli, tmp_path):
    m3 = write_mimic3(tmp_path / "m3")
    result = cli("data", "check", str(m3), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mimic3 layout" in out
    for fragment in (
        "patients",
        "3",
        "error notes dropped",
        "Discharge summary",
        "Septicemia (except in labor)",
    ):
        assert fragment in out, fragment
    for row in NOTES[1:]:
        assert row[-1].splitlines()[0] not in out  # no note text on screen
