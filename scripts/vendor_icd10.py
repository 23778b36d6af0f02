"""Derive clinpred's compact ICD-10-CM table from the reference files in ../shared/data/icd10.

Run once when the reference data change: python scripts/vendor_icd10.py ../shared/data/icd10 ../shared/data/icd9
Writes clinpred/data/resources/icd10_ccs.csv.gz: one row per ICD-10-CM diagnosis code (no dot) with its
single-level CCS category (number; its name comes from the ICD-9 table, which has every category) and
its MIMIC-III benchmark phenotype, if any. Descriptions are left out to keep the table small.

Route: AHRQ's own ICD-10-CM -> single-level CCS table (v2019.1), then CCS category -> phenotype exactly as
the ICD-9 route does (each of the 25 benchmark phenotypes is one single-level CCS category: its ``id``
in hcup_ccs_2015_definitions.yaml). Why not the CMS GEMs to ICD-9 and then the ICD-9 table: the GEMs are
many-to-many (7,862 ICD-10 codes have several ICD-9 targets, 731 have none, combination codes need
several ICD-9 codes at once) and were built for converting claims, not for grouping, so a code's
phenotype would depend on which target one picks; AHRQ's table gives every code exactly one category,
drawn by the same people who drew the ICD-9 CCS. The GEM route is still computed here, as a check, and
its agreement is printed (and written to PROVENANCE.md by hand).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import yaml

OUT = Path(__file__).resolve().parents[1] / "clinpred" / "data" / "resources" / "icd10_ccs.csv.gz"


def _unquote(value: str) -> str:
    return value.strip().strip("'\" ").strip()


def read_ccs_icd10(src: Path) -> pd.DataFrame:
    """AHRQ's ICD-10-CM -> single-level CCS table: code, category number, code description."""
    rows = []
    with open(src / "ccs_dx_icd10cm_2019_1.csv", newline="", encoding="latin-1") as f:
        reader = csv.reader(f)
        next(reader)
        for rec in reader:
            code = _unquote(rec[0])
            if code:
                rows.append((code, int(_unquote(rec[1])), _unquote(rec[2])))
    return pd.DataFrame(rows, columns=["icd10_code", "ccs_single", "description"])


def benchmark_ids(icd9: Path) -> dict[int, str]:
    """CCS category number -> benchmark phenotype name, for the 25 groups used in the benchmark."""
    definitions = yaml.safe_load((icd9 / "hcup_ccs_2015_definitions.yaml").read_text())
    return {int(spec["id"]): name for name, spec in definitions.items() if spec.get("use_in_benchmark")}


def gem_agreement(icd10: Path, icd9: Path, table: pd.DataFrame) -> tuple[int, int, int, int]:
    """The GEM route against the direct one: (compared, agreeing, ambiguous, disagreeing on complications).

    Compared: codes whose GEM targets all share one ICD-9 phenotype (or none) and that either route puts
    in a phenotype; ambiguous: codes whose GEM targets fall in different phenotypes. Most disagreements
    are injury/poisoning codes that ICD-9 CCS files under "Complications of surgical procedures or
    medical care" (996-999) and ICD-10 CCS under the injury itself, or the reverse.
    """
    definitions = yaml.safe_load((icd9 / "hcup_ccs_2015_definitions.yaml").read_text())
    icd9_pheno = {
        str(c): name
        for name, spec in definitions.items()
        if spec.get("use_in_benchmark")
        for c in spec["codes"]
    }
    gem = pd.read_csv(
        icd10 / "2018_I10gem.txt", sep=r"\s+", header=None, names=["src", "dst", "flags"], dtype=str
    )
    gem = gem[gem["dst"] != "NoDx"]
    gem["pheno"] = gem["dst"].map(icd9_pheno).fillna("")
    per_code = gem.groupby("src")["pheno"].agg(lambda s: set(s))
    ambiguous = int((per_code.map(len) > 1).sum())
    single = per_code[per_code.map(len) == 1].map(lambda s: next(iter(s)))
    direct = table.set_index("icd10_code")["benchmark_phenotype"].reindex(single.index)
    compared = direct.notna() & ((direct != "") | (single != ""))
    differ = compared & (direct != single)
    complication = "Complications of surgical procedures or medical care"
    on_complications = int((differ & ((direct == complication) | (single == complication))).sum())
    return int(compared.sum()), int((direct[compared] == single[compared]).sum()), ambiguous, on_complications


def main(icd10: Path, icd9: Path) -> None:
    table = read_ccs_icd10(icd10)
    ids = benchmark_ids(icd9)
    table["benchmark_phenotype"] = table["ccs_single"].map(ids).fillna("")
    table = table.sort_values("icd10_code")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table[["icd10_code", "ccs_single", "benchmark_phenotype"]].to_csv(
        OUT, index=False, compression={"method": "gzip", "mtime": 0}
    )
    compared, agree, ambiguous, on_complications = gem_agreement(icd10, icd9, table)
    print(
        f"{len(table)} codes, {table.benchmark_phenotype.ne('').sum()} in benchmark phenotypes "
        f"({table.benchmark_phenotype[table.benchmark_phenotype != ''].nunique()} phenotypes) -> {OUT}\n"
        f"GEM check: {agree}/{compared} codes in a phenotype by either route agree ({agree / compared:.1%}); "
        f"{on_complications} of the {compared - agree} disagreements involve the complications phenotype; "
        f"{ambiguous} codes have GEM targets in different phenotypes"
    )


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/icd10"),
        Path(sys.argv[2]) if len(sys.argv) > 2 else Path("../shared/data/icd9"),
    )
