"""Derive clinpred's compact ICD-9 table from the reference files in ../shared/data/icd9.

Run once when the reference data change: python scripts/vendor_icd9.py ../shared/data/icd9
Writes clinpred/data/resources/icd9_ccs.csv.gz: one row per ICD-9-CM diagnosis code (no dot) with its
CMS v32 long description, its single-level CCS category, and its MIMIC-III benchmark phenotype (one of
the 25 CCS groups with use_in_benchmark: True in the HCUP CCS 2015 definitions), if any.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import yaml

OUT = Path(__file__).resolve().parents[1] / "clinpred" / "data" / "resources" / "icd9_ccs.csv.gz"


def main(src: Path) -> None:
    definitions = yaml.safe_load((src / "hcup_ccs_2015_definitions.yaml").read_text())
    phenotype: dict[str, str] = {}
    for group, spec in definitions.items():
        if spec.get("use_in_benchmark"):
            for code in spec["codes"]:
                phenotype[str(code)] = group

    rows = []
    with open(src / "ccs_single_level_dxref_2015.csv", newline="") as f:
        next(f)  # a note line precedes the header
        reader = csv.reader(f, quotechar="'")
        next(reader)
        for rec in reader:
            code = rec[0].strip().strip("'\" ")
            if not code:
                continue
            rows.append((code, int(rec[1].strip()), rec[2].strip()))
    ccs = pd.DataFrame(rows, columns=["icd9_code", "ccs_single", "ccs_single_name"])

    desc = {}
    for line in (src / "CMS32_DESC_LONG_DX.txt").read_text(encoding="latin-1").splitlines():
        code, _, text = line.partition(" ")
        if code:
            desc[code.strip()] = text.strip()
    ccs["description"] = ccs["icd9_code"].map(desc).fillna("")
    ccs["benchmark_phenotype"] = ccs["icd9_code"].map(phenotype).fillna("")
    missing = sorted(set(phenotype) - set(ccs["icd9_code"]))
    extra = pd.DataFrame(
        {
            "icd9_code": missing,
            "ccs_single": 0,
            "ccs_single_name": "",
            "description": [desc.get(c, "") for c in missing],
            "benchmark_phenotype": [phenotype[c] for c in missing],
        }
    )
    table = pd.concat([ccs, extra], ignore_index=True).sort_values("icd9_code")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table[["icd9_code", "description", "ccs_single", "ccs_single_name", "benchmark_phenotype"]].to_csv(
        OUT, index=False, compression={"method": "gzip", "mtime": 0}
    )
    print(f"{len(table)} codes, {table.benchmark_phenotype.ne('').sum()} in benchmark phenotypes -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/icd9"))
