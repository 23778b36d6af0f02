"""Benchmark: the OMOP reader's CONCEPT lookup (omop_concepts.py) against reading CONCEPT.csv whole.

    python benchmarks/omop_concept.py                    # 2,000,000 rows (~190 MB), a minute or so
    python benchmarks/omop_concept.py --rows 6000000     # Athena's full size (about 1 GB of CSV once
                                                         # names are real; several GB for the peer)

Writes a synthetic CONCEPT.csv as Athena ships it (tab-separated, nothing quoted, the ten CDM columns,
dates as YYYYMMDD), then, each in a fresh process so that peak memory (ru_maxrss) is that read's own:

- peer: ``pandas.read_csv`` of the whole file as text (tab-separated, no quoting, the three columns
  the reader needs, every row), then the rows of the asked ids kept: the reader before this change;
- filtered: ``ConceptLookup`` (pyarrow.csv.open_csv, 1 MB blocks, three columns decoded, each block
  filtered to the asked ids): what the reader does now.

Both look up the same ``--ids`` concept ids (spread over the file, some in no row) and must give the same
vocabulary_id and concept_name of each (checked). Prints each run, then time and peak RSS ratios
(filtered / peer).

Measured on 2 shared cores (AMD EPYC, load 4-6 from other jobs), 2,000,000 rows (249 MB), 500 ids
(490 present), two interleaved runs each, best of two; peak RSS includes the same 130 MB of imports:

    peer (pandas.read_csv whole, 3 columns)   3.28 s   559 MB   (+429 MB over the imports)
    filtered (ConceptLookup, 1 MB blocks)      0.44 s   194 MB   (+64 MB; second run +86 MB)
    ratio filtered / peer                      0.13x    0.35x

With 16 MB blocks the filtered read peaked at 485 MB: pyarrow's streaming reader holds some tens of
blocks in flight, hence BLOCK_BYTES = 1 MB. Not measured here: Athena's 6-7 million rows should
scale the peer's excess about 3x and leave the filtered read's at a block's worth plus the rows kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = (
    "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\t"
    "concept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
)
VOCABULARIES = ("SNOMED", "LOINC", "RxNorm", "ICD10CM", "ICD9CM", "NDC", "CPT4", "OMOP Extension")
DOMAINS = ("Condition", "Measurement", "Drug", "Procedure", "Observation")

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, root, ids = sys.argv[1], Path(sys.argv[2]), [int(v) for v in sys.argv[3].split(",")]
import csv
import pandas as pd
from clinpred.data.omop_concepts import ConceptLookup
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the imports, the same for both
start = time.perf_counter()
if mode == "peer":
    frame = pd.read_csv(
        root / "CONCEPT.csv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
        na_values=[], usecols=["concept_id", "concept_name", "vocabulary_id"],
    )
    frame = frame[frame["concept_id"].str.strip().isin({str(i) for i in ids})]
    cid = frame["concept_id"].astype("int64")
    vocab = dict(zip(cid, frame["vocabulary_id"], strict=True))
    names = dict(zip(cid, frame["concept_name"], strict=True))
else:
    lookup = ConceptLookup(root)
    vocab, names = lookup.vocabularies(ids), lookup.names(ids)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
found = sorted((int(k), vocab[k], names[k]) for k in vocab)
print(json.dumps({"seconds": seconds, "peak_mb": peak, "imports_mb": before, "found": found}))
"""


def write_concept(path: Path, rows: int) -> None:
    """``rows`` concepts, ids 1 .. rows, names of 40-75 characters, written 50,000 at a time: this
    process stays small, since a child's ru_maxrss starts from its parent's resident size at fork."""
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER)
        for first in range(1, rows + 1, 50_000):
            f.write(
                "".join(
                    f"{i}\t{'Concept of a synthetic vocabulary ' * (1 + i % 2)}{i}\t{DOMAINS[i % 5]}\t"
                    f"{VOCABULARIES[i % 8]}\tClinical Finding\t{'S' if i % 3 else ''}\tC{i:08d}\t"
                    "19700101\t20991231\t\n"
                    for i in range(first, min(first + 50_000, rows + 1))
                )
            )


def run(mode: str, root: Path, ids: list[int]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(root), ",".join(map(str, ids))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--ids", type=int, default=500, help="concept ids asked about")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omop-concept-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_concept(root / "CONCEPT.csv", args.rows)
        size = (root / "CONCEPT.csv").stat().st_size
        print(
            f"CONCEPT.csv: {args.rows:,} rows, {size / 2**20:,.0f} MB, written in {time.perf_counter() - start:.1f} s"
        )
        step = max(args.rows // args.ids, 1)
        ids = [1 + k * step for k in range(args.ids - 10)] + [
            args.rows + 1 + k for k in range(10)
        ]  # 10 absent
        results: dict[str, list[dict]] = {"peer": [], "filtered": []}
        for _ in range(args.repeats):  # interleaved: the load of the machine falls on both
            for mode in results:
                results[mode].append(run(mode, root, ids))
                r = results[mode][-1]
                print(
                    f"  {mode:<8} {r['seconds']:6.2f} s  peak RSS {r['peak_mb']:5.0f} MB "
                    f"(after imports {r['imports_mb']:.0f} MB)  found {len(r['found'])}"
                )
        assert results["peer"][0]["found"] == results["filtered"][0]["found"], "the two reads differ"
        best = {
            m: (min(r["seconds"] for r in rs), min(r["peak_mb"] for r in rs)) for m, rs in results.items()
        }
        (pt, pm), (ft, fm) = best["peer"], best["filtered"]
        print(
            f"peer (pandas, whole file): {pt:.2f} s, {pm:.0f} MB; filtered (ConceptLookup): {ft:.2f} s, "
            f"{fm:.0f} MB; ratio filtered/peer: time {ft / pt:.2f}x, peak RSS {fm / pm:.2f}x "
            f"({len(results['peer'][0]['found'])} of {len(ids)} ids found, same in both)"
        )


if __name__ == "__main__":
    main()
