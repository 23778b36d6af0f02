"""CONCEPT read only for the ids asked about: Athena's tab-separated file streamed, Parquet filtered."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omop_files import CONCEPT, write_omop

from clinpred.data.omop import read_omop_with_details
from clinpred.data.omop_concepts import ConceptLookup
from clinpred.errors import InputError

VOCABULARIES = ("SNOMED", "ICD10CM", "LOINC", "RxNorm")


def _athena_rows(n: int) -> list[list[str]]:
    """CONCEPT's header and the fixture's rows, then ``n`` filler rows (ids 1,000,000 on), one of which
    has a name with a lone double quote, as Athena's unquoted files do (it must not swallow rows)."""
    filler = [
        [
            str(1_000_000 + i),
            f'Concept {i} 5" tube' if i == 7 else f"Concept {i}",
            "Condition",
            VOCABULARIES[i % 4],
            "Clinical Finding",
            "S",
            f"C{i}",
            "19700101",
            "20991231",
            "",
        ]
        for i in range(n)
    ]
    return [CONCEPT[0], *CONCEPT[1:], *filler]


def _write_tsv(path, rows, gz=False):
    text = "".join("\t".join(r) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)


@pytest.mark.parametrize("name", ["CONCEPT.csv", "CONCEPT.csv.gz"])
def test_athena_tsv_is_streamed_and_only_the_asked_rows_kept(tmp_path, name):
    _write_tsv(tmp_path / name, _athena_rows(20_000), gz=name.endswith(".gz"))
    lookup = ConceptLookup(tmp_path, block_bytes=64 << 10)  # about 20 blocks
    lookup.want([9201])
    asked = [44835000, 45000001, 1_000_007, 1_000_008, 1_019_999, 5]  # 5: in no row
    assert lookup.vocabularies(asked) == {
        44835000: "ICD9CM",
        45000001: "ICD10CM",
        1_000_007: "RxNorm",
        1_000_008: "SNOMED",
        1_019_999: "RxNorm",
    }
    assert lookup.names([1_000_007, 1_000_008, 9201]) == {
        1_000_007: 'Concept 7 5" tube',
        1_000_008: "Concept 8",
        9201: "Inpatient Visit",
    }
    assert len(lookup.vocabulary) == 6 and lookup.passes == 1  # the wanted id rode the first pass
    assert lookup.names([4229440]) == {4229440: "Chronic congestive heart failure"} and lookup.passes == 2


def test_parquet_concept_is_filtered_in_the_scan(tmp_path):
    rows = _athena_rows(5_000)
    columns = {h: [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])}
    columns["concept_id"] = [int(v) for v in columns["concept_id"]]
    (tmp_path / "concept").mkdir()
    pq.write_table(pa.table(columns), tmp_path / "concept" / "part-0.parquet", row_group_size=1_000)
    lookup = ConceptLookup(tmp_path)
    assert lookup.vocabularies([45000010, 1_004_999]) == {45000010: "LOINC", 1_004_999: "RxNorm"}
    assert len(lookup.vocabulary) == 2


def test_an_omop_folder_with_athenas_concept_reads_as_with_a_comma_csv(tmp_path):
    _, expected = read_omop_with_details(write_omop(tmp_path / "csv"), cache_dir=tmp_path / "c")
    root = write_omop(tmp_path / "athena", concept=None)
    _write_tsv(root / "CONCEPT.csv", _athena_rows(3_000))
    _, details = read_omop_with_details(root, cache_dir=tmp_path / "c")
    assert details.summary() == expected.summary()
    assert details.conditions_by_version_rule["concept"] == 2  # the ICD9CM and ICD10CM source concepts


def test_a_broken_concept_row_is_one_message_without_its_content(cli, tmp_path):
    rows = _athena_rows(100)
    rows[50] = rows[50][:4]  # a row cut short
    root = write_omop(tmp_path / "o", concept=None)
    _write_tsv(root / "CONCEPT.csv", rows)
    with pytest.raises(
        InputError, match=r"CONCEPT.csv: column CONCEPT_ID, data row 50: cannot be read"
    ) as err:
        ConceptLookup(root).vocabularies([44835000])
    assert "Concept 44" not in str(err.value)  # names the row, never quotes it
    result = cli("data", "check", str(root), env={"CLINPRED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2 and "CONCEPT.csv" in result.stderr and "Traceback" not in result.stderr
