"""Derive clinpred's single-level CCS -> multi-level CCS chapter table from ../shared/data/icd9.

Run once when the reference data change: python scripts/vendor_ccs_chapters.py ../shared/data/icd9
Writes clinpred/data/resources/ccs_chapters.csv: one row per single-level CCS category with the level-1
category of AHRQ's multi-level CCS (18 chapters: "Diseases of the circulatory system", ...). The
single-level number is the key because both ICD tables (icd9_ccs, icd10_ccs) already give it, so one
small table places ICD-9 and ICD-10-CM codes alike. The script refuses a single-level category that the
multi-level file puts in two chapters (none does in the 2015 files).

The multi-level file lists 10,109 ICD-9 codes, which reach 254 of the 283 single-level categories that the
ICD-9 and ICD-10-CM tables use (98 "Essential hypertension" and 53 "Disorders of lipid metabolism" among
the 29 missing). Each chapter is a contiguous run of category numbers (mental illness 650-670, E codes
2601-2621), so a missing category takes the chapter of the next category number the file does place; where the
categories on its two sides are in different chapters (only 245 "Syncope") that is the following one,
where AHRQ places it (17.1 opens with 245). Such rows are
marked ``from_range``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "clinpred" / "data" / "resources" / "ccs_chapters.csv"


def main(src: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from clinpred.data.labels import icd9_table, icd10_table  # the vendored code -> single-level CCS tables

    multi = pd.read_csv(src / "ccs_multi_dx.csv.gz", dtype=str).set_index("icd9_code")
    single = icd9_table()[["ccs_single"]]
    joined = single.join(multi[["ccs_level1", "ccs_group1"]], how="inner")
    per_category = joined.groupby("ccs_single")["ccs_level1"].nunique()
    if (per_category > 1).any():
        raise SystemExit(
            f"single-level categories in several chapters: {list(per_category[per_category > 1].index)}"
        )
    table = (
        joined.drop_duplicates("ccs_single")
        .rename(columns={"ccs_level1": "chapter", "ccs_group1": "chapter_name"})
        .assign(chapter=lambda t: t["chapter"].astype(int), from_range=False)
    )
    known = table.sort_values("ccs_single")
    numbers, chapters = known["ccs_single"].to_numpy(), known["chapter"].to_numpy()
    names = dict(zip(known["chapter"], known["chapter_name"], strict=False))
    used = set(single["ccs_single"]) | set(icd10_table()["ccs_single"])
    extra = []
    for number in sorted(used - set(numbers)):
        after = numbers.searchsorted(number)  # the next known category: its chapter
        chapter = int(chapters[min(after, len(numbers) - 1)])
        if after and chapters[after - 1] != chapter:
            print(f"category {number} lies between chapters {chapters[after - 1]} and {chapter}: {chapter}")
        extra.append(
            {"ccs_single": number, "chapter": chapter, "chapter_name": names[chapter], "from_range": True}
        )
    table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True).sort_values("ccs_single")
    table = table[["ccs_single", "chapter", "chapter_name", "from_range"]]
    table.to_csv(OUT, index=False)
    print(
        f"wrote {OUT}: {len(table)} single-level categories in {table['chapter'].nunique()} chapters, "
        f"{int(table['from_range'].sum())} placed by their chapter's run of numbers"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "icd9")
