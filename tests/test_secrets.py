"""An API key given through the environment reaches the server and nothing else: no output, log, summary,
report or cache file of ``syneg generate`` or ``syneg run`` holds it, even when calls fail with errors."""

import subprocess
from pathlib import Path

from tests.fake_openai import FakeOpenAI, HTTPFault, syneg_reply
from tests.test_faults import DOMAIN, cli_env, pairs_dataset, syneg_cli, write_beir

KEY = "sk-test-SECRET-123456"
NEEDLE = b"SECRET-123456"  # also catches a key that was partly masked


def files_holding_the_key(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and NEEDLE in p.read_bytes()]


def reply(body: dict) -> str:
    """SyNeg's replies, but two queries always fail: a refused key (401) and a broken server (500)."""
    prompt = str(body["messages"][-1]["content"])
    for query, status in (("cohort 0?", 401), ("cohort 1?", 500)):
        if query in prompt:
            raise HTTPFault(status)
    return syneg_reply(body)


def test_api_key_never_lands_in_outputs_or_caches(tiny_encoder_path, tmp_path):
    data = write_beir(pairs_dataset(40), tmp_path / "data")
    home = tmp_path / "home"
    env = cli_env(home, key=KEY)
    # Failures put LiteLLM's error messages (which could quote a request) into the rows' ``error`` field.
    with FakeOpenAI(reply, rates={"500": 0.15, "garbage": 0.1, "non_json": 0.1}, seed=3) as server:
        gen = subprocess.run(
            syneg_cli("generate", "--data", data, "--out", home / "gen", "--lm", "openai/fake", "--api-base",
                      server.url, "--encoder", tiny_encoder_path, "--limit", "12", "--concurrency", "4",
                      "--no-progress"),
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert gen.returncode == 0, gen.stdout[-2000:] + gen.stderr[-2000:]
        n_generate = len(server.requests)
        run = subprocess.run(
            syneg_cli("run", "--name", "secret", "--runs-dir", home / "runs", "--data", data, "--encoder",
                      tiny_encoder_path, "--lm", "openai/fake", "--api-base", server.url, "--domain", DOMAIN,
                      "--generate-limit", "4", "--range-min", "0", "--relative-margin", "0", "--batch-size", "4",
                      "--max-steps", "2", "--strategy", "generate", "--no-progress"),  # writes: always calls the LM
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    # The key did go out, on every request (so this test would see a key that is dropped or swapped) ...
    assert n_generate > 0 and len(server.requests) > n_generate
    assert all(h.get("Authorization") == f"Bearer {KEY}" for h in server.headers)
    assert server.injected["401"] and server.injected["500"] and server.injected["garbage"]
    errors = " ".join(line for line in (home / "gen" / "negatives.jsonl").read_text().splitlines() if "injected" in line)
    assert "401" in errors and "500" in errors  # the HTTP errors' messages were stored
    # ... the places it could leak to exist and were written ...
    for folder in (home / "gen", home / "runs" / "secret" / "generate", home / "syneg-cache" / "dspy"):
        assert any(p.is_file() for p in folder.rglob("*")), folder
    assert any(p.name == "negatives.jsonl" for p in (home / "runs").rglob("*"))
    # ... and none of them, nor the console output, holds it.
    assert files_holding_the_key(home) == []
    for text in (gen.stdout, gen.stderr, run.stdout, run.stderr):
        assert NEEDLE.decode() not in text
