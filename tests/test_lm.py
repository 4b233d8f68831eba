"""LLM backends: scripted provider through DSPy's adapters, any OpenAI-compatible server through LiteLLM,
GGUF assembly and verification, grammar-constrained JSON from the embedded model."""

import hashlib
import json
import os
from typing import Literal

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError, LMError
from fake_openai import FakeOpenAI

from syneg_dspy.errors import InputError
from syneg_dspy.lm import check_backend, embedded_model_path, list_backends, make_lm, register_script
from syneg_dspy.lm.local import grammar_format
from syneg_dspy.lm.models import EMBEDDED, EmbeddedModel, assemble, is_verified, part_files, verify

CHAT_REPLY = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"


class QA(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class Judged(dspy.Signature):
    """Write a passage about the query and rate it."""

    query: str = dspy.InputField()
    passage: str = dspy.OutputField()
    difficulty: Literal["easy", "medium", "hard"] = dspy.OutputField()
    score: float = dspy.OutputField()


def predict(lm, adapter, signature=QA, **inputs):
    with dspy.context(lm=lm, adapter=adapter):
        return dspy.Predict(signature)(**(inputs or {"question": "What is the capital of France?"}))


# ---- scripted provider ----------------------------------------------------------------------------


def test_scripted_chat_adapter_parses_and_counts_tokens():
    seen = []

    def script(messages, kwargs):
        seen.append((messages, kwargs))
        return CHAT_REPLY

    register_script("chat-ok", script)
    lm = make_lm("scripted/chat-ok", temperature=0.3, max_tokens=64)
    assert predict(lm, dspy.ChatAdapter()).answer == "Paris"
    messages, kwargs = seen[-1]
    assert "What is the capital of France?" in messages[-1]["content"]
    assert kwargs["temperature"] == 0.3 and kwargs["max_tokens"] == 64
    usage = lm.history[-1]["usage"]
    assert usage["completion_tokens"] == len(CHAT_REPLY.split())  # whitespace words
    assert usage["prompt_tokens"] == sum(len(m["content"].split()) for m in messages)


def test_scripted_json_adapter_receives_schema_and_parses_typed_fields():
    seen = []

    def script(messages, kwargs):
        seen.append(kwargs)
        return json.dumps({"passage": "Vitamin D and sunlight.", "difficulty": "hard", "score": "0.75"})

    register_script("json-ok", script)
    lm = make_lm("scripted/json-ok")
    pred = predict(lm, dspy.JSONAdapter(), Judged, query="vitamin D fractures")
    assert (pred.passage, pred.difficulty, pred.score) == ("Vitamin D and sunlight.", "hard", 0.75)
    fmt = seen[-1]["response_format"]  # the adapter trusted our schema support and sent a schema
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert set(schema["required"]) == {"passage", "difficulty", "score"}
    assert schema["properties"]["difficulty"]["enum"] == ["easy", "medium", "hard"]


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter, dspy.JSONAdapter])
@pytest.mark.parametrize("reply", ["I think it is Paris", '{"passage": "cut off mid', '{"passage": "x", "difficulty": "wild"}'])
def test_scripted_garbage_raises_adapter_parse_error(adapter, reply):
    register_script(f"garbage-{adapter.__name__}-{len(reply)}", lambda messages, kwargs: reply)
    lm = make_lm(f"scripted/garbage-{adapter.__name__}-{len(reply)}")
    with pytest.raises(AdapterParseError):
        predict(lm, adapter(), Judged, query="q")


def test_reregistered_script_is_not_answered_from_cache():
    answers = []
    for city in ("Paris", "Lyon"):
        register_script("cached", lambda messages, kwargs, city=city: json.dumps({"answer": city}))
        lm = make_lm("scripted/cached", cache=True)
        answers.append(predict(lm, dspy.JSONAdapter()).answer)
        answers.append(predict(lm, dspy.JSONAdapter()).answer)  # second call: DSPy's cache
    assert answers == ["Paris", "Paris", "Lyon", "Lyon"]


def test_cache_serves_repeated_calls_without_calling_the_script():
    calls = []
    register_script("counted", lambda messages, kwargs: calls.append(1) or json.dumps({"answer": "x"}))
    lm = make_lm("scripted/counted", cache=True)
    for _ in range(3):
        predict(lm, dspy.JSONAdapter(), question="once?")
    assert len(calls) == 1
    lm = make_lm("scripted/counted", cache=False)
    for _ in range(2):
        predict(lm, dspy.JSONAdapter(), question="once?")
    assert len(calls) == 3


def test_scripted_async_call():
    import asyncio

    register_script("async-ok", lambda messages, kwargs: json.dumps({"answer": "Paris"}))
    lm = make_lm("scripted/async-ok", cache=False)

    async def ask():
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            return await dspy.Predict(QA).acall(question="capital?")

    assert asyncio.run(ask()).answer == "Paris"


def test_provider_registration_is_idempotent():
    import litellm

    from syneg_dspy.lm import register_providers

    register_providers()
    register_providers()
    names = [item["provider"] for item in litellm.custom_provider_map]
    assert names.count("local") == 1 and names.count("scripted") == 1


def test_unregistered_script_is_an_lm_error():
    with pytest.raises(LMError, match="no script registered"):
        make_lm("scripted/never-registered")("hi")


# ---- any OpenAI-compatible server, through LiteLLM --------------------------------------------------


def test_openai_compatible_server_by_model_string_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    with FakeOpenAI(reply=CHAT_REPLY) as server:
        lm = make_lm("openai/some-model", api_base=server.url, cache=False)
        assert predict(lm, dspy.ChatAdapter()).answer == "Paris"
    body = server.requests[-1]
    assert body["model"] == "some-model" and body["max_tokens"] == 512
    assert "What is the capital of France?" in body["messages"][-1]["content"]
    assert server.headers[-1]["Authorization"] == "Bearer sk-test-dummy"  # key from the env, never passed by us
    assert "sk-test-dummy" not in json.dumps(lm.dump_state())
    assert lm.history[-1]["usage"]["completion_tokens"] == len(CHAT_REPLY.split())


def test_check_backend_reports_latency_text_tokens(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    with FakeOpenAI(reply="ready", latency_s=0.2) as server:
        result = check_backend("openai/some-model", api_base=server.url)
    assert result["text"] == "ready"
    assert result["latency_s"] >= 0.2
    assert result["tokens"] == len("Reply with the single word: ready".split()) + 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("fault", [{"statuses": [500]}, {"garbage": True}])
def test_check_backend_failure_is_one_input_error(monkeypatch, fault):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    with FakeOpenAI(**fault) as server:
        with pytest.raises(InputError, match="openai/some-model"):
            check_backend("openai/some-model", api_base=server.url)
    assert len(server.requests) == 1  # a health check does not retry


def test_make_lm_routes_through_litellm_and_validates_local_models(tmp_path):
    assert make_lm("openai/gpt-4o-mini").engine == "litellm"
    with pytest.raises(InputError, match="no such GGUF file"):
        make_lm(f"local/{tmp_path}/missing.gguf")
    with pytest.raises(InputError, match="unknown local model"):
        make_lm("local/gpt-5")
    with pytest.raises(InputError):
        make_lm("openai/")


def test_critique_of_mined_edits_is_off_by_default_only_for_the_measured_embedded_model():
    from syneg_dspy.lm import critique_mined

    assert not critique_mined("auto", "local/qwen2.5-coder-0.5b")
    assert critique_mined("auto", "local/qwen2.5-coder-1.5b")  # not measured: the paper's loop
    assert critique_mined("auto", "openai/gpt-4o-mini") and critique_mined("auto", "local/my-model.gguf")
    assert critique_mined("always", "local/qwen2.5-coder-0.5b") and not critique_mined("never", "openai/gpt-4o-mini")
    with pytest.raises(ValueError, match="auto, always or never"):
        critique_mined("sometimes", "openai/gpt-4o-mini")


def test_list_backends_names_every_kind():
    rows = {row["kind"]: row for row in list_backends()}
    assert set(rows) == {"embedded", "local", "scripted", "router", "litellm"}
    embedded = [row for row in list_backends() if row["kind"] == "embedded"]
    assert {row["name"] for row in embedded} == {f"local/{name}" for name in EMBEDDED}
    assert all("pip install --no-deps" in row["install"] for row in embedded)


# ---- grammar translation ----------------------------------------------------------------------------


def test_grammar_format_translates_schemas_strips_unsafe_keywords_and_forbids_empty_strings():
    schema = {
        "type": "object",
        "title": "Out",
        "properties": {
            "pattern": {"type": "string", "maxLength": 300, "pattern": "^a+$"},  # a field *named* pattern stays
            "when": {"type": "string", "format": "date-time", "minLength": 5},
            "kind": {"type": "string", "enum": ["a", "b"]},
        },
        "required": ["pattern", "when"],
    }
    nonempty = {"type": "string", "minLength": 1}  # the one length rule kept: small models answer "" otherwise
    expected = {
        "type": "object",
        "title": "Out",
        "properties": {"pattern": nonempty, "when": nonempty, "kind": {"type": "string", "enum": ["a", "b"]}},
        "required": ["pattern", "when"],
    }
    wrapped = {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema, "strict": True}}
    assert grammar_format(wrapped) == {"type": "json_object", "schema": expected}
    assert grammar_format({"type": "json_object", "schema": schema}) == {"type": "json_object", "schema": expected}
    assert grammar_format({"type": "json_object"}) == {"type": "json_object"}
    assert grammar_format({"type": "text"}) is None
    assert grammar_format(None) is None


def test_grammar_format_accepts_a_pydantic_class():
    import pydantic

    class Out(pydantic.BaseModel):
        label: Literal["a", "b"]
        text: str = pydantic.Field(max_length=50)

    fmt = grammar_format(Out)
    assert fmt["schema"]["properties"]["label"]["enum"] == ["a", "b"]
    assert fmt["schema"]["properties"]["text"] == {"title": "Text", "type": "string", "minLength": 1}


# ---- GGUF assembly and verification -----------------------------------------------------------------


@pytest.fixture
def parts(tmp_path):
    chunks = [os.urandom(1000), os.urandom(2500), b"tail"]
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = tmp_path / "parts" / f"part{i:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(chunks)
    return paths, len(whole), hashlib.sha256(whole).hexdigest(), whole


def test_assemble_concatenates_in_order_and_records_verification(parts, tmp_path):
    paths, size, sha, whole = parts
    dest = tmp_path / "models" / "m.gguf"
    assert assemble(paths, dest, size=size, sha256=sha) == dest
    assert dest.read_bytes() == whole
    assert is_verified(dest, size, sha)
    assert verify(dest, size, sha)  # via the sidecar, no re-hash needed


def test_assemble_with_corrupt_part_fails_and_leaves_nothing(parts, tmp_path):
    paths, size, sha, _ = parts
    paths[1].write_bytes(b"x" + paths[1].read_bytes()[1:])
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(InputError, match="corrupt"):
        assemble(paths, dest, size=size, sha256=sha)
    assert list(dest.parent.iterdir()) == []  # no partial file, no temp file, no sidecar


def test_assemble_with_parts_out_of_order_fails(parts, tmp_path):
    paths, size, sha, _ = parts
    with pytest.raises(InputError):
        assemble(list(reversed(paths)), tmp_path / "m.gguf", size=size, sha256=sha)


def test_changed_model_file_is_rehashed_and_deleted_on_mismatch(parts, tmp_path):
    paths, size, sha, whole = parts
    dest = assemble(paths, tmp_path / "m.gguf", size=size, sha256=sha)
    dest.write_bytes(b"y" + whole[1:])  # same size, new mtime: the sidecar no longer vouches for it
    assert not is_verified(dest, size, sha)
    assert not verify(dest, size, sha)
    assert not dest.exists()


def test_file_without_sidecar_is_hashed_once_and_accepted(parts, tmp_path):
    paths, size, sha, whole = parts
    dest = tmp_path / "m.gguf"
    dest.write_bytes(whole)
    assert not is_verified(dest, size, sha)
    assert verify(dest, size, sha)
    assert is_verified(dest, size, sha)


def test_missing_parts_error_names_the_pip_command():
    model = EmbeddedModel("tiny", "tiny.gguf", "syneg-test-no-such-dist-part", 3, "1.0", 10, "0" * 64)
    with pytest.raises(InputError, match=r"pip install --no-deps syneg-test-no-such-dist-part\{1\.\.3\}==1\.0"):
        part_files(model)


def test_installed_embedded_parts_are_found_in_order():
    model = EMBEDDED["qwen2.5-coder-0.5b"]
    try:
        paths = part_files(model)
    except InputError:
        pytest.skip("embedded 0.5B parts not installed")
    assert len(paths) == model.n_parts
    assert sum(p.stat().st_size for p in paths) == model.size
    assert [p.name for p in paths] == sorted(p.name for p in paths)


# ---- the embedded model, for real ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded():
    """The embedded 0.5B, assembled and verified (skips where its parts are not installed)."""
    try:
        embedded_model_path("qwen2.5-coder-0.5b")
    except InputError as err:
        pytest.skip(str(err))
    return "local/qwen2.5-coder-0.5b"


@pytest.mark.llm
def test_embedded_model_returns_schema_constrained_json(embedded):
    import jsonschema

    lm = make_lm(embedded, temperature=0.0, max_tokens=64, cache=False)
    pred = predict(lm, dspy.JSONAdapter(), Judged, query="Does vitamin D supplementation prevent fractures?")
    assert pred.difficulty in ("easy", "medium", "hard")
    assert isinstance(pred.score, float) and isinstance(pred.passage, str) and pred.passage
    raw = json.loads(lm.history[-1]["outputs"][0])  # the raw text itself is JSON, not repaired
    schema = lm.history[-1]["kwargs"]["response_format"]
    schema = schema.model_json_schema() if isinstance(schema, type) else schema["json_schema"]["schema"]
    jsonschema.validate(raw, schema)
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 50 and 0 < usage["completion_tokens"] <= 64


@pytest.mark.llm
def test_embedded_model_grammar_forces_json_where_the_prompt_does_not_ask_for_it(embedded):
    import jsonschema
    import litellm

    make_lm(embedded)  # registers the model's schema support
    schema = {
        "type": "object",
        "properties": {"zebra_count": {"type": "integer"}, "mood": {"type": "string", "enum": ["xq", "zv"]}},
        "required": ["zebra_count", "mood"],
        "additionalProperties": False,
    }
    messages = [{"role": "user", "content": "Say hello to me in one short sentence."}]
    fmt = {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema, "strict": True}}
    constrained = litellm.completion(embedded, messages, response_format=fmt, max_tokens=32, temperature=0.0)
    jsonschema.validate(json.loads(constrained.choices[0].message.content), schema)
    free = litellm.completion(embedded, messages, max_tokens=32, temperature=0.0)
    assert "zebra_count" not in free.choices[0].message.content  # the JSON came from the grammar, not the prompt
    assert constrained.usage.completion_tokens > 0


@pytest.mark.llm
def test_any_gguf_path_is_a_local_model(embedded):
    path = embedded_model_path("qwen2.5-coder-0.5b")
    result = check_backend(f"local/{path}")
    assert result["text"].strip() and result["tokens"] > 0


def test_local_answers_cached_under_other_decoding_settings_are_not_replayed(embedded, monkeypatch):
    import dspy.clients.cache

    from syneg_dspy.lm import backends

    def key(lm):
        return dspy.cache.cache_key({"model": lm.model, "messages": [{"role": "user", "content": "hi"}], **lm.kwargs})

    before = make_lm(embedded)
    assert before.kwargs["metadata"] == {"decoding": backends.DECODING}
    monkeypatch.setattr(backends, "DECODING", backends.DECODING + ";other")
    assert key(make_lm(embedded)) != key(before)


@pytest.mark.llm
def test_embedded_model_keeps_one_context_per_system_message(embedded, monkeypatch):
    import litellm

    from syneg_dspy.lm import local

    make_lm(embedded)
    local.LOCAL.close()
    monkeypatch.setattr(local, "CONTEXTS", 2)
    path = embedded_model_path("qwen2.5-coder-0.5b")

    def ask(system, user):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        reply = litellm.completion(embedded, messages, max_tokens=12, temperature=0.0)
        return reply.choices[0].message.content, local.LOCAL.model(path, local.context_key(messages))[0]

    _, terse = ask("You are terse.", "Name one colour.")
    _, french = ask("You answer in French.", "Name one colour.")
    answer, again = ask("You are terse.", "Repeat this word once: banana")
    assert again is terse and french is not terse  # the same system message, the same context and its KV cache
    assert "banana" in answer.lower()  # a reused prefix still answers the new question
    _, third = ask("You are a poet.", "Name one colour.")
    assert third is french and len(local.LOCAL._models[path]) == 2  # past CONTEXTS, the least recently used is taken
    local.LOCAL.close()


@pytest.mark.llm
def test_embedded_model_takes_a_prompt_as_long_as_miprov2_proposals(embedded):
    """MIPROv2's instruction proposer sends the program's source and a data summary: 4,572 and 7,076
    tokens on SciFact, which a 4,096-token context refused mid-compile."""
    import litellm
    from dspy.propose.utils import get_dspy_source_code

    from programs.syneg import SyNeg

    make_lm(embedded)
    source = get_dspy_source_code(SyNeg())
    prompt = f"{source}\n\n{source[: len(source) // 2]}\n\nName the class defined first above, in one word."
    reply = litellm.completion(embedded, [{"role": "user", "content": prompt}], max_tokens=4, temperature=0.0)
    assert reply.usage.prompt_tokens > 4096
    assert reply.choices[0].message.content.strip()
