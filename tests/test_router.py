"""``--lm router/<group>``: generation through a real ``litellm.Router`` over two fake OpenAI servers on 127.0.0.1.

The Router balances, retries, falls back and caps in-flight requests per deployment; these tests watch what
each server received. The fleet's key comes from ``os.environ/...`` in the config and must reach both servers
and nothing else.
"""

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import main
from programs import load_program
from syneg_dspy.errors import InputError
from syneg_dspy.generate import generate_negatives
from syneg_dspy.lm import make_lm
from syneg_dspy.store import read_jsonl
from tests.fake_openai import FakeOpenAI, HTTPFault, syneg_reply
from tests.test_faults import DOMAIN, lenient_guard, pairs_dataset  # noqa: F401  (lenient_guard is a fixture)
from tests.test_secrets import files_holding_the_key

KEY_VAR = "SYNEG_TEST_FLEET_KEY"
KEY = "sk-fleet-SECRET-123456"


@pytest.fixture(autouse=True)
def fleet_key(monkeypatch):
    monkeypatch.setenv(KEY_VAR, KEY)
    monkeypatch.delenv("SYNEG_ROUTER_CONFIG", raising=False)


def deployment(group: str, url: str, **params) -> dict:
    return {"model_name": group,
            "litellm_params": {"model": "openai/fake", "api_base": url, "api_key": f"os.environ/{KEY_VAR}", **params}}


def write_config(path: Path, deployments: list[dict], **settings) -> Path:
    path.write_text(yaml.safe_dump({"model_list": deployments, "router_settings": settings}))
    return path


def always_500(body: dict) -> str:
    raise HTTPFault(500)


def check_rows(path: Path, n: int) -> list[dict]:
    """Every item has exactly one row, and each row is accepted, rejected or failed with its reason."""
    rows = read_jsonl(path)
    assert len(rows) == n and len({r["key"] for r in rows}) == n
    for row in rows:
        assert row["verdict"] in {"accepted", "rejected", "failed"}
        assert (row["reject_reason"] is None) == (row["verdict"] == "accepted"), row
        assert row["lm"] == "router/qwen"
    return rows


def test_generation_is_spread_over_both_servers_and_the_key_stays_in_memory(lenient_guard, tmp_path):
    ds = pairs_dataset(24)
    out = tmp_path / "gen" / "negatives.jsonl"
    with FakeOpenAI(syneg_reply, latency_s=0.05, rates={"500": 0.05}, seed=1) as a, \
            FakeOpenAI(syneg_reply, latency_s=0.05, rates={"500": 0.05}, seed=2) as b:
        config = write_config(tmp_path / "router.yaml", [deployment("qwen", a.url), deployment("qwen", b.url)],
                              num_retries=1, disable_cooldowns=True)
        lm = make_lm("router/qwen", router_config=config)  # cached: DSPy's cache must not hold the key either
        summary = generate_negatives(ds, "train", load_program(), lm, out, guard=lenient_guard, domain=DOMAIN,
                                     concurrency=8, progress=False)
    rows = check_rows(out, 24)
    total = len(a.requests) + len(b.requests)
    assert total >= 48 and min(len(a.requests), len(b.requests)) >= total // 5, (len(a.requests), len(b.requests))
    assert all(h.get("authorization") == f"Bearer {KEY}" for h in a.headers + b.headers)
    assert a.injected["500"] + b.injected["500"] > 0  # the Router retried them (num_retries=1)
    assert summary.lm == "router/qwen" and summary.accepted + sum(summary.rejected.values()) + sum(
        summary.failed.values()) == 24
    assert sum(r["verdict"] == "accepted" for r in rows) >= 18
    summary_file = json.loads((out.parent / "summary.json").read_text())
    assert summary_file["lm"] == "router/qwen"
    assert files_holding_the_key(tmp_path) == []
    assert files_holding_the_key(Path(os.environ["DSPY_CACHEDIR"])) == []


@pytest.mark.parametrize("layout", ["retry_in_group", "fallback_group"])
def test_a_server_that_always_fails_is_routed_around(layout, lenient_guard, tmp_path):
    ds = pairs_dataset(16)
    out = tmp_path / "negatives.jsonl"
    with FakeOpenAI(always_500) as broken, FakeOpenAI(syneg_reply) as good:
        if layout == "retry_in_group":  # two deployments of one group: retries go to the healthy one
            config = write_config(tmp_path / "router.yaml", [deployment("qwen", broken.url), deployment("qwen", good.url)],
                                  num_retries=2, allowed_fails=0)
        else:  # a group on the broken server only, falling back to another group
            config = write_config(tmp_path / "router.yaml", [deployment("qwen", broken.url), deployment("backup", good.url)],
                                  num_retries=0, fallbacks=[{"qwen": ["backup"]}])
        lm = make_lm("router/qwen", router_config=config, cache=False)
        summary = generate_negatives(ds, "train", load_program(), lm, out, guard=lenient_guard, domain=DOMAIN,
                                     concurrency=4, progress=False)
    check_rows(out, 16)
    assert summary.failed == {} and summary.accepted >= 12
    assert broken.injected["500"] >= 1 and good.injected["ok"] >= 32  # tried, then served by the other


def test_max_parallel_requests_caps_each_server(tmp_path):
    """Six callers, two servers with two slots each: neither server ever sees a third concurrent request. In
    LiteLLM 1.106 the Router refuses the extra call with a 429 rather than queueing it (the README says to keep
    --concurrency below the fleet's slots); such an item fails with its reason and --retry-failed redoes it."""
    peaks, inflight, lock = {}, {}, threading.Lock()

    def tracked(name: str):
        def reply(body: dict) -> str:
            with lock:
                inflight[name] = inflight.get(name, 0) + 1
                peaks[name] = max(peaks.get(name, 0), inflight[name])
            time.sleep(0.2)
            with lock:
                inflight[name] -= 1
            return name
        return reply

    with FakeOpenAI(tracked("a")) as a, FakeOpenAI(tracked("b")) as b:
        config = write_config(tmp_path / "router.yaml",
                              [deployment("qwen", a.url, max_parallel_requests=2),
                               deployment("qwen", b.url, max_parallel_requests=2)],
                              routing_strategy="least-busy", num_retries=0)
        lm = make_lm("router/qwen", router_config=config, cache=False)

        def call(i: int) -> str:
            try:
                return lm(f"call {i}")[0]
            except Exception as err:  # the Router's refusal, as DSPy raises it
                return type(err).__name__

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(12)))
    assert peaks == {"a": 2, "b": 2}  # both servers used their two slots, never a third
    assert {"a", "b"} <= set(results) and any("RateLimit" in r for r in results)


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no such router config file"),
        ("model_list: [\n  {model_name: qwen", "invalid YAML"),
        ("router_settings: {}\n", "model_list must be a non-empty list"),
        ("model_list: []\n", "model_list must be a non-empty list"),
        ("model_list:\n- litellm_params: {model: openai/x}\n", r"model_list\[0\]: needs a model_name"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: gpt}\n", r"model_list\[0\]: litellm_params.model"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: openai/x, rpm: -3}\n", "rpm must be a positive"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: openai/x, api_key: os.environ/NO_SUCH_VAR_X}\n",
         "NO_SUCH_VAR_X not set"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: openai/x}\nrouter_settings: {retries: 3}\n",
         "unknown setting.*retries"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: openai/x}\nlitellm_settings: {}\n",
         "unsupported section.*litellm_settings"),
        ("model_list:\n- model_name: qwen\n  litellm_params: {model: openai/x}\n"
         "router_settings: {routing_strategy: fastest-please}\n", "litellm.Router rejected the config"),
        ("model_list:\n- model_name: other\n  litellm_params: {model: openai/x}\n", "no model group 'qwen'.*other"),
    ],
)
def test_bad_configs_are_one_line_input_errors(text, message, tmp_path):
    path = tmp_path / "router.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        make_lm("router/qwen", router_config=path)
    assert str(err.value).startswith(f"{path}") and "\n" not in str(err.value)


def test_config_comes_from_the_environment_and_api_base_is_refused(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="SYNEG_ROUTER_CONFIG"):
        make_lm("router/qwen")
    config = write_config(tmp_path / "router.json", [deployment("qwen", "http://127.0.0.1:9/v1")])
    config.write_text(json.dumps(yaml.safe_load(config.read_text())))  # JSON works as well
    monkeypatch.setenv("SYNEG_ROUTER_CONFIG", str(config))
    assert make_lm("router/qwen").model == "router/qwen"
    with pytest.raises(InputError, match="--api-base does not apply"):
        make_lm("router/qwen", api_base="http://127.0.0.1:9/v1")


def test_cli_backends_check_through_the_router(tmp_path):
    with FakeOpenAI(reply="ready") as a, FakeOpenAI(reply="ready") as b:
        config = write_config(tmp_path / "router.yaml", [deployment("qwen", a.url), deployment("qwen", b.url)])
        ok = CliRunner().invoke(main, ["backends", "check", "--lm", "router/qwen", "--router-config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert "router/qwen:" in ok.output and "reply: 'ready'" in ok.output and KEY not in ok.output
    assert len(a.requests) + len(b.requests) == 1

    bad = CliRunner().invoke(main, ["backends", "check", "--lm", "router/nope", "--router-config", str(config)])
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [f"error: {config}: no model group 'nope' (groups: qwen)"]


def test_the_readme_fleet_config_builds_a_router(tmp_path, monkeypatch):
    """The vLLM fleet example in README's Scale-out section is a config the Router accepts."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("## Scale-out", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "fleet.yaml").write_text(example)
    monkeypatch.setenv("VLLM_API_KEY", "sk-vllm-dummy")
    from syneg_dspy.lm.router import check_group

    loaded = check_group("qwen", tmp_path / "fleet.yaml")
    assert loaded.groups == ["qwen", "qwen-small"] and len(loaded.router.model_list) == 3
    assert make_lm("router/qwen", router_config=tmp_path / "fleet.yaml").model == "router/qwen"
