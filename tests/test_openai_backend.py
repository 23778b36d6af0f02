"""The OpenAI backend with the real openai client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
from openai_server import DEFAULT_DIM, EmbeddingServer, Fault, vector_for

from clinpred.backends.external import (
    external_api_record,
    require_external_permission,
)
from clinpred.backends.openai_backend import (
    EmbeddingRequestError,
    OpenAIBackend,
    openai_status,
)
from clinpred.backends.openai_tokens import estimate_tokens, load_counter
from clinpred.errors import InputError

KEY = "sk-test-0123456789-do-not-print"

CLINICAL = [
    "Admission Date:  [**2151-7-16**]       Discharge Date:  [**2151-8-4**]\n\nSex:  F\nService: MEDICINE",
    "Na 140 K 4.2 Cl 101 HCO3 24 BUN 18 Cr 1.1 Glu 132 WBC 11.2 Hgb 9.8 Plt 245",
    "FINDINGS: Small left pleural effusion. No pneumothorax.\nIMPRESSION: Improved bibasilar atelectasis.",
    "pt c/o SOB, HR 110s, BP 90/50, SpO2 88% on 4L NC -> NRB, ABG 7.31/48/62; lasix 40mg IV x1, -1.2L.",
    "Sinus rhythm. PR 0.16, QRS 0.08, QTc 0.42. Left axis deviation. Nonspecific ST-T wave changes.",
    "Patient is a 67 yo man with h/o CAD s/p CABG [**2145**], DM2, CKD stage III, who presents with CP.",
    "Nutrition: Pt NPO; TF Jevity 1.2 @ 60 mL/hr goal; BMI 31.4; albumin 2.9 g/dL.",
]


def expected(texts: list[str], dim: int = DEFAULT_DIM) -> np.ndarray:
    rows = np.stack([vector_for(t, dim) for t in texts]).astype(np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def server():
    with EmbeddingServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def backend(server: EmbeddingServer, **settings) -> OpenAIBackend:
    base = {"base_url": server.url, "api_key": KEY, "backoff_base": 0.01}
    return OpenAIBackend(**{**base, **settings})


def test_multi_batch_vectors_in_input_order_from_base64(server):
    texts = [f"{note} (note {i})" for i, note in enumerate(CLINICAL * 2)]
    b = backend(server, max_inputs_per_request=3, max_in_flight=3)
    out = b.embed(texts)
    assert out.dtype == np.float32 and out.shape == (len(texts), DEFAULT_DIM)
    np.testing.assert_allclose(out, expected(texts), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert len(server.requests) == 5  # 14 texts, 3 per request
    assert all(r.body["encoding_format"] == "base64" for r in server.requests)  # the client's default
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert sorted(t for r in server.requests for t in r.inputs) == sorted(texts)


def test_settings_from_environment_and_dimensions(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    b = OpenAIBackend(model="text-embedding-3-large", dimensions=8)
    out = b.embed(CLINICAL[:3])
    assert server.requests[0].body["model"] == "text-embedding-3-large"
    assert server.requests[0].body["dimensions"] == 8
    np.testing.assert_allclose(out, expected(CLINICAL[:3], 8), atol=1e-6)
    assert "dim=8" in b.fingerprint() and "text-embedding-3-large" in b.fingerprint()


def test_splits_at_2048_inputs(server):
    texts = [f"short note number {i}" for i in range(2050)]
    out = backend(server).embed(texts)
    assert sorted(len(r.inputs) for r in server.requests) == [2, 2048]
    np.testing.assert_allclose(out, expected(texts), atol=1e-6)


def test_token_budget_packs_requests_greedily(server):
    b = backend(server, max_tokens_per_request=60, max_in_flight=1)
    counter = b.counter
    texts = [c + f" #{i}" for i, c in enumerate(CLINICAL * 3)]
    out = b.embed(texts)
    per_request = [[counter.count(t) for t in r.inputs] for r in server.requests]
    assert all(sum(tokens) <= 60 for tokens in per_request)
    assert len(per_request) > 1
    # greedy and in order: the first text of each request would not have fitted in the one before
    for prev, nxt in itertools.pairwise(per_request):
        assert sum(prev) + nxt[0] > 60
    assert [t for r in server.requests for t in r.inputs] == texts  # one worker: sent in input order
    np.testing.assert_allclose(out, expected(texts), atol=1e-6)
    assert b.stats["tokens"] == sum(map(sum, per_request))


@pytest.mark.parametrize("counter_name", ["auto", "estimate"])
def test_truncates_long_inputs_by_tokens_and_counts_them(server, counter_name):
    long_note = " ".join(CLINICAL * 20)
    b = backend(server, max_tokens_per_input=50, token_counter=counter_name)
    short = "No acute distress."
    plan = b.plan([long_note, short, long_note + " again"])
    assert "2 to be truncated to 50 tokens" in plan
    b.embed([long_note, short, long_note + " again"])
    sent = server.requests[0].inputs
    assert b.stats["truncated"] == 2
    assert long_note.startswith(sent[0]) and len(sent[0]) < len(long_note)
    assert sent[1] == short
    exact = load_counter("auto")
    assert exact.exact, "the bundled cl100k_base file should make counts exact"
    assert exact.count(sent[0]) <= 50  # never over the cap, whichever counter cut it
    if counter_name == "auto":
        assert exact.count(sent[0]) >= 45  # an exact cut wastes little
    assert b.describe()["stats"]["truncated"] == 2


def test_bundled_encoding_is_cl100k_and_estimate_never_undercounts():
    counter = load_counter("auto")
    assert counter.name == "tiktoken-cl100k_base"
    assert counter._encoding.encode_ordinary("hello world") == [15339, 1917]  # cl100k_base's ids
    rng = np.random.default_rng(0)
    pieces = [*CLINICAL, "[**2151-7-16**]", "1,234,567.89", "  \n\n\t", "日本語 😀 ñá", "qzxv", "#$%^&*()"]
    for _ in range(200):
        text = " ".join(rng.choice(pieces, size=rng.integers(1, 30)))
        assert estimate_tokens(text) >= counter.count(text)


def test_429_waits_at_least_retry_after(server):
    server.script(Fault("429", retry_after="0.2"))
    b = backend(server, backoff_base=0.0)
    out = b.embed(CLINICAL[:2])
    first, second = server.requests[0], server.requests[1]
    assert first.status == 429 and second.status == 200
    assert second.arrived - first.arrived >= 0.2
    np.testing.assert_allclose(out, expected(CLINICAL[:2]), atol=1e-6)
    assert b.stats["retries"] == 1


def test_429_honours_retry_after_ms(server):
    server.script(Fault("429", retry_after_ms="250"))
    backend(server, backoff_base=0.0).embed(CLINICAL[:1])
    assert server.requests[1].arrived - server.requests[0].arrived >= 0.25


def test_500_then_success(server):
    server.script(Fault("500"), Fault("500"))
    b = backend(server)
    out = b.embed(CLINICAL)
    assert [r.status for r in server.requests] == [500, 500, 200]
    np.testing.assert_allclose(out, expected(CLINICAL), atol=1e-6)
    assert b.stats["retries"] == 2


def test_timeout_then_success(server):
    server.script(Fault("slow", seconds=1.5))
    b = backend(server, timeout=0.3)
    out = b.embed(CLINICAL[:3])
    assert len(server.requests) == 2
    np.testing.assert_allclose(out, expected(CLINICAL[:3]), atol=1e-6)


def test_malformed_json_is_a_clear_error(server):
    server.script(Fault("malformed"))
    with pytest.raises(EmbeddingRequestError, match="malformed response") as info:
        backend(server).embed(CLINICAL[:2])
    assert isinstance(info.value, InputError)
    assert len(server.requests) == 1  # not retried: it would not parse next time either


def test_response_missing_a_row_is_a_clear_error(server):
    server.script(Fault("missing_row"))
    with pytest.raises(EmbeddingRequestError, match="expected 3 embeddings, got 2"):
        backend(server).embed(CLINICAL[:3])


def test_permanent_failure_says_how_far_it_got_and_never_quotes_text(server):
    server.fail_from = 2  # requests 0 and 1 answered, every later one 500
    b = backend(server, max_inputs_per_request=2, max_in_flight=1, max_retries=2, backoff_base=0.0)
    with pytest.raises(EmbeddingRequestError) as info:
        b.embed(CLINICAL)
    message = str(info.value)
    assert "failed after 2 of 4 requests (4 of 7 texts embedded" in message
    assert "HTTP 500" in message and "3 attempts" in message
    assert not any(chunk in message for note in CLINICAL for chunk in note.split() if len(chunk) > 4)
    assert KEY not in message


def test_failure_counts_progress_across_cache_chunks(server):
    """The cache wrapper calls plan(all) and then embed(chunk) chunk by chunk: the message covers the run."""
    texts = [f"{c} #{i}" for i, c in enumerate(CLINICAL)]
    b = backend(server, max_inputs_per_request=2, max_in_flight=1, max_retries=0)
    b.plan(texts)
    b.embed(texts[:4])  # requests 0, 1
    server.fail_from = 3  # request 2 (texts 4-5) answered, request 3 fails
    with pytest.raises(EmbeddingRequestError, match=r"failed after 3 of 4 requests \(6 of 7 texts embedded"):
        b.embed(texts[4:])


def test_requests_in_flight_are_bounded():
    with EmbeddingServer(delay=0.15) as srv:
        backend(srv, max_inputs_per_request=1, max_in_flight=3).embed(CLINICAL * 2)
        assert len(srv.requests) == 14
        assert 1 < srv.max_concurrent <= 3
    with EmbeddingServer(delay=0.02) as srv:
        backend(srv, max_inputs_per_request=1, max_in_flight=1).embed(CLINICAL[:4])
        assert srv.max_concurrent == 1


def test_api_key_never_in_describe_fingerprint_plan_or_repr(server):
    b = backend(server)
    b.embed(CLINICAL[:1])
    for shown in (repr(b.describe()), b.fingerprint(), b.plan(CLINICAL), repr(b.settings), str(b.settings)):
        assert KEY not in shown
        assert "0123456789" not in shown


def test_azure_deployment_url_shape(server):
    b = OpenAIBackend(
        api_type="azure",
        azure_endpoint=server.root,
        api_version="2024-10-21",
        model="my-embedding-deployment",
        api_key=KEY,
    )
    out = b.embed(CLINICAL[:3])
    rec = server.requests[0]
    assert rec.path == "/openai/deployments/my-embedding-deployment/embeddings"
    assert rec.query["api-version"] == ["2024-10-21"]
    assert rec.headers["api-key"] == KEY and "authorization" not in rec.headers
    np.testing.assert_allclose(out, expected(CLINICAL[:3]), atol=1e-6)
    assert "azure" in b.fingerprint() and KEY not in repr(b.describe())


def test_plan_reports_tokens_requests_and_cost(server):
    b = backend(server, max_inputs_per_request=3)
    counter = load_counter("auto")
    tokens = sum(counter.count(t) for t in CLINICAL)
    plan = b.plan(CLINICAL)
    assert f"7 texts, {tokens:,} tokens (exact)" in plan
    assert "3 requests" in plan
    assert f"${tokens * 0.02 / 1e6:,.6f}" in plan
    large = backend(server, model="text-embedding-3-large").plan(CLINICAL)
    assert f"${tokens * 0.13 / 1e6:,.6f}" in large
    other = backend(server, model="my-local-model").plan(CLINICAL)
    assert "cost unknown" in other and "estimated" in other
    assert len(server.requests) == 0  # planning sends nothing


def test_empty_text_is_sent_as_a_space(server):
    b = backend(server)
    out = b.embed(["", CLINICAL[0]])
    assert server.requests[0].inputs == [" ", CLINICAL[0]]
    np.testing.assert_allclose(out, expected([" ", CLINICAL[0]]), atol=1e-6)
    assert b.stats["empty_replaced"] == 1


def test_status_and_missing_key(monkeypatch, server):
    assert openai_status() == (False, "no API key: set OPENAI_API_KEY or the api_key setting")
    assert openai_status({"api_key": "x"}) == (True, "")
    b = OpenAIBackend(base_url=server.url)
    with pytest.raises(InputError, match="no API key"):
        b.embed(CLINICAL[:1])
    assert server.requests == []
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert openai_status() == (True, "")
    monkeypatch.setitem(sys.modules, "openai", None)  # how Python marks a package as unavailable
    ok, why = openai_status()
    assert not ok and "openai package is not installed" in why


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_inputs_per_request": 5000}, "max_inputs_per_request"),
        ({"max_tokens_per_input": 9000}, "max_tokens_per_input"),
        ({"api_typo": "azure"}, "api_typo"),
        ({"base_url": "localhost:8000"}, "base_url"),
        ({"api_type": "azure", "api_version": "2024-10-21"}, "azure_endpoint"),
    ],
)
def test_bad_settings_name_the_setting(settings, named):
    with pytest.raises(InputError, match=named):
        OpenAIBackend(**settings)


class _LocalBackend:
    name = "tfidf"


def test_external_api_guard():
    b = OpenAIBackend(api_key=KEY)
    with pytest.raises(InputError) as info:
        require_external_permission(b, protected=True, allow_external_api=False)
    message = str(info.value)
    assert "--allow-external-api" in message and "PhysioNet" in message and "third parties" in message
    assert "api.openai.com" in message and KEY not in message
    require_external_permission(b, protected=True, allow_external_api=True)
    require_external_permission(b, protected=False, allow_external_api=False)  # synthetic cohort
    require_external_permission(_LocalBackend(), protected=True, allow_external_api=False)
    assert external_api_record(b, protected=True, allow_external_api=True) == {
        "allow_external_api": True,
        "sends_text_off_machine": True,
        "protected_text_sent_off_machine": True,
    }
    assert (
        external_api_record(_LocalBackend(), protected=True, allow_external_api=False)[
            "sends_text_off_machine"
        ]
        is False
    )


def test_preferred_chunk_size_fills_the_requests_in_flight():
    b = OpenAIBackend(api_key=KEY, max_inputs_per_request=100, max_in_flight=3)
    assert b.preferred_chunk_size == 300


# -- through the CLI, as a user meets it: one message, exit code 2, no traceback ---------------------


def test_cli_check_against_local_server(cli, server):
    result = cli(
        "backends", "check", "openai", "-s", f"base_url={server.url}", "-s", "dimensions=8",
        env={"OPENAI_API_KEY": KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "dimension 8" in result.stdout
    assert len(server.requests) == 1 and server.requests[0].body["dimensions"] == 8
    assert KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"OPENAI_API_KEY": ""}, "no API key: set OPENAI_API_KEY"),
        (("-s", "max_inputs_per_request=5000"), {"OPENAI_API_KEY": KEY}, "max_inputs_per_request"),
        (("-s", "api_type=azure"), {"OPENAI_API_KEY": KEY, "AZURE_OPENAI_ENDPOINT": ""}, "azure_endpoint"),
    ],
)
def test_cli_user_errors_exit_2(cli, server, args, env, message):
    result = cli("backends", "check", "openai", "-s", f"base_url={server.url}", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert server.requests == []


def test_cli_permanent_failure_exit_2_says_how_far(cli, server):
    server.fail_from = 0
    result = cli(
        "backends", "check", "openai", "-s", f"base_url={server.url}", "-s", "max_retries=1",
        "-s", "backoff_base=0", env={"OPENAI_API_KEY": KEY},
    )  # fmt: skip
    assert result.returncode == 2
    assert "failed after 0 of 1 requests (0 of 1 texts embedded" in result.stderr
    assert "HTTP 500" in result.stderr and "Traceback" not in result.stderr
    assert len(server.requests) == 2


def test_with_the_real_cache_answered_chunks_survive_a_failure(server, tmp_path):
    """plan() counts the requests the cache's chunking will send; a rerun sends only what is missing."""
    from clinpred.backends import CachedBackend, EmbeddingCache

    texts = [f"{c} #{i}" for i, c in enumerate(CLINICAL * 2)]  # 14 texts
    settings = {"max_inputs_per_request": 2, "max_in_flight": 2, "max_retries": 0}
    b = backend(server, **settings)
    assert "7 requests" in b.plan(texts)  # chunks of 4, 4, 4, 2 texts: 2 + 2 + 2 + 1
    server.fail_from = 4  # the first two chunks (4 requests, 8 texts) are answered, then every request fails
    cached = CachedBackend(b, EmbeddingCache(tmp_path), progress=False)
    with pytest.raises(EmbeddingRequestError, match="of 7 requests"):
        cached.embed(texts)
    server.fail_from = None
    sent_before = len(server.requests)
    again = CachedBackend(backend(server, **settings), EmbeddingCache(tmp_path), progress=False)
    out = again.embed(texts)
    resent = [t for r in server.requests[sent_before:] for t in r.inputs]
    assert len(resent) == 14 - 8
    np.testing.assert_allclose(out, expected(texts), atol=1e-6)


def test_prompts_are_prepended_by_role_and_fingerprinted(server):
    """A prompted model behind a server (EmbeddingGemma on vLLM/TEI/infinity) gets its prompts from us."""
    plain = backend(server)
    prompted = backend(
        server, document_prompt="title: none | text: ", query_prompt="task: search result | query: "
    )
    docs, queries = prompted.embed(CLINICAL[:2]), prompted.embed(CLINICAL[:2], role="query")
    np.testing.assert_allclose(docs, expected([f"title: none | text: {t}" for t in CLINICAL[:2]]), atol=1e-6)
    np.testing.assert_allclose(
        queries, expected([f"task: search result | query: {t}" for t in CLINICAL[:2]]), atol=1e-6
    )
    assert "title: none" not in prompted.plan(CLINICAL[:2])  # the plan gives counts, never text
    assert plain.fingerprint() != prompted.fingerprint() and "prompts=" not in plain.fingerprint()
    assert prompted.describe()["document_prompt"] == "title: none | text: "
