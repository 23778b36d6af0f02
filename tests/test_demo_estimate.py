"""The demo's estimate rests on the measurements of this kind of CPU, and says which machine gave them."""

from __future__ import annotations

import re

import pytest

from clinpred.demo_estimate import REFERENCE, cpu_kind, estimate_line, estimate_seconds

LABELS = ["minilm-base", "minilm-seed", "minilm-clinical", "tfidf", "openai"]
XEON = "flags\t\t: fpu vme sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
EPYC = "flags\t\t: fpu vme sse2 avx avx2 fma\n"


@pytest.mark.parametrize(
    ("cpuinfo", "kind"),
    [
        (f"processor\t: 0\n{XEON}\nprocessor\t: 1\n{XEON}", "amx"),
        (f"processor\t: 0\n{EPYC}", "other"),
        ("flags\t\t: avx512_bf16 avx512f amx_bf16x\n", "other"),  # a flag that only begins the same
        ("processor\t: 0\nmodel name\t: something without flags\n", "unknown"),
        (None, "unknown"),  # no /proc/cpuinfo (not Linux)
    ],
)
def test_the_kind_of_cpu_is_read_from_its_flags(tmp_path, cpuinfo, kind):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert cpu_kind(path) == kind


def test_each_kind_has_a_table_for_each_size_with_the_same_stages():
    stages = set(REFERENCE["amx"]["demo"])
    for kind in REFERENCE.values():
        for table in kind.values():
            assert set(table) == stages and all(seconds > 0 for seconds in table.values())


def test_the_line_names_the_machine_and_a_cpu_without_amx_is_told_the_longer_time():
    train = ["seed", "clinical"]
    amx = estimate_line("demo", train, [], LABELS, cpu="amx")
    other = estimate_line("demo", train, [], LABELS, cpu="other")
    assert "an Intel Xeon with AMX, like this CPU" in amx
    assert "an AMD EPYC with AVX2 and no AMX, like this CPU" in other
    assert "this CPU's kind is unknown" in estimate_line("demo", train, [], LABELS, cpu="unknown")

    def minutes(line: str) -> int:
        return int(re.search(r"Estimate: about (\d+) min", line)[1])

    assert minutes(amx) == round(estimate_seconds("demo", train, 3, "amx") / 60)
    assert minutes(other) == round(estimate_seconds("demo", train, 3, "other") / 60) > minutes(amx)
    # a reused fine-tune costs nothing
    assert estimate_seconds("demo", [], 3, "other") < estimate_seconds("demo", train, 3, "other")
