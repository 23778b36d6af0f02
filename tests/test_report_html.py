"""report.html, RESULTS.md's definitions and the end-of-run table, on the committed demo run.

The page is built from a copy of results/synthetic (its results.json and units files, real outputs of
`clinpred demo`), with fewer bootstrap resamples for the paired differences so the test stays fast.
The browser test opens it in headless Chromium as a person would.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from clinpred.report import curves
from clinpred.report.compare import load_run
from clinpred.report.html import write_report_html
from clinpred.report.markdown import results_markdown
from clinpred.report.terminal import results_text
from tests.browser import chromium_path, visit
from tests.conftest import REPO

SYNTHETIC = REPO / "results" / "synthetic"
FIGURES = 7  # recall, per-label AUROC, ROC, calibration, Kaplan-Meier, UMAP, forest
HOSTILE = 'tfidf <img src=x onerror="alert(1)">'  # a backend label is user input: it must stay text


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.html of a copy of the committed demo run, paired differences on 50 resamples.

    The tfidf backend is relabelled with markup, which the page must show as text.
    """
    run = tmp_path_factory.mktemp("report") / "synthetic"
    shutil.copytree(SYNTHETIC / "units", run / "units")
    (run / "units" / "tfidf").rename(run / "units" / HOSTILE)
    results = json.loads((SYNTHETIC / "results.json").read_text())
    for backend in results["backends"]:
        backend["label"] = HOSTILE if backend["label"] == "tfidf" else backend["label"]
        for task in backend["results"].values():
            task["bootstrap"]["n_resamples"] = 50
    (run / "results.json").write_text(json.dumps(results))
    return write_report_html(run / "report.html", [run])


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_page_is_self_contained_with_every_section(report):
    page = report.read_text()
    parser = _Tags()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags and "img" not in tags
    assert "onerror" not in {k for _, a in parser.tags for k in a}
    assert "tfidf &lt;img" in page  # escaped in the table and in the figures' SVG text
    links = [v for _, a in parser.tags for k, v in a.items() if k in ("src", "href", "xlink:href") and v]
    assert all(v.startswith(("#", "data:")) for v in links), [v for v in links if not v.startswith("#")]
    assert tags.count("figure") == FIGURES
    for section in ("table", "recall", "diagnosis", "survival", "geometry", "differences", "backends"):
        assert f'id="{section}"' in page
    assert page.count("<details>") >= 4 and "Raw definition (JSON" in page
    assert "log-rank" in page and "patient@k" in page  # the committed units carry patient_rank: drawn
    counts = json.loads((SYNTHETIC / "results.json").read_text())["backends"][0]["results"]["recall"][
        "counts"
    ]
    queries, patients = counts["queries"], counts["patients_with_queries"]
    assert f"{queries:,} queries from {patients:,} patients" in page and queries > 5000 and patients > 990
    assert f"{counts['pool_size_min']:,} notes" in page  # 6,078 in the generator-2.3 demo


@pytest.mark.skipif(
    chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_the_page_renders_in_chromium_without_errors_or_requests(report, tmp_path):
    shot = tmp_path / "report.png"
    seen = visit(report, shot, profile=tmp_path / "profile")
    assert seen.requests == [report.resolve().as_uri()], "the page made network requests"
    assert seen.errors == []
    assert len(seen.figures) == FIGURES
    assert all(f["w"] > 100 and f["h"] > 100 for f in seen.figures), seen.figures
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100_000


def test_results_md_definitions_are_words_not_json():
    md = results_markdown(load_run(SYNTHETIC))
    definitions = md[md.index("## Task definitions") :]
    assert '{"' not in definitions and "`{" not in definitions
    # bullets of words: the longest lists survival's metrics and how each one's interval is drawn
    assert max(map(len, definitions.splitlines())) < 600
    assert "- Pool: every evaluation note" in definitions and "- counts: patients 1,000" in definitions
    assert "| recall | top5 |" in md  # the table itself is unchanged


def test_the_terminal_table_fits_100_columns_with_main_metrics_only():
    results = load_run(SYNTHETIC)
    text = results_text(results)
    assert max(map(len, text.splitlines())) <= 100
    assert "top5" in text and "macro_auroc" in text and "| top1 " not in text
    assert "patient_top5" in text and "within_top1" in text  # recall's identity check stays beside top5
    assert "top1" in results_text(results, all_metrics=True)
    for backend in list(results.backends):  # more backends than fit side by side: split, still fits
        results.backends.append(backend.model_copy(update={"label": backend.label + "-second-copy"}))
    text = results_text(results, all_metrics=True)
    assert max(map(len, text.splitlines())) <= 100 and "tfidf-second-copy" in text


def test_recall_curves_match_a_direct_count():
    units = pd.DataFrame(
        {"rank": [1, 3, 7, 60], "pool_size": [10, 10, 100, 100], "patient_rank": [1, 1, 2, np.nan]}
    )
    c = curves.recall_curves(units, max_k=10).set_index("k")
    assert c.loc[1, "next"] == 0.25 and c.loc[5, "next"] == 0.5 and c.loc[10, "next"] == 0.75
    assert c.loc[1, "patient"] == 0.5 and c.loc[2, "patient"] == 0.75
    assert c.loc[10, "chance"] == pytest.approx((1 + 1 + 0.1 + 0.1) / 4)
    assert "patient" not in curves.recall_curves(units.drop(columns="patient_rank")).columns


def test_risk_tertiles_are_cut_within_folds_and_logrank_separates_groups():
    rng = np.random.default_rng(0)
    n = 270  # 90 patients per fold, 30 per tertile
    risk = rng.normal(size=n)
    fold = np.arange(n) % 3
    scaled = risk * (1 + 10 * fold)  # each fold's model on its own scale
    time = rng.exponential(100 * np.exp(-risk))
    units = pd.DataFrame({"risk": scaled, "fold": fold, "time": time, "event": time < 200})
    units["time"] = units["time"].clip(upper=200)
    groups = curves.risk_tertiles(units)
    assert (pd.crosstab(groups, fold) == n // 9).all().all()
    km = curves.kaplan_meier_by_risk(units)
    assert km is not None and km.dof == 2 and km.pvalue < 1e-3
    assert km.curves["high risk"][1][-1] < km.curves["low risk"][1][-1]
    assert sum(km.sizes.values()) == n


def test_without_matplotlib_the_page_has_tables_and_says_how_to_get_figures(report, monkeypatch):
    from clinpred.report import html

    monkeypatch.setattr(html, "_figures", lambda shown: None)  # as where the plots extra is not installed
    page = html.report_html([report.parent], compare=False)
    assert "<figure>" not in page and 'pip install "clinpred[plots]"' in page
    assert 'id="diagnosis"' in page and "Raw definition (JSON" in page
