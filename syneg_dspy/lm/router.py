"""``router/<model_group>``: generation through a ``litellm.Router`` built from a LiteLLM router config file.

``dspy.LM`` takes a model string, not a Router, so the Router sits behind an in-process LiteLLM provider:
``router/qwen`` forwards each call to ``Router.acompletion(model="qwen")``. Balancing, retries, fallbacks,
cooldowns, rpm/tpm and ``max_parallel_requests`` are all the Router's own. The config is LiteLLM's format
(``model_list`` with ``litellm_params``, ``api_key: os.environ/VAR``; ``router_settings``), named by
``SYNEG_ROUTER_CONFIG`` or passed explicitly; keys are resolved by LiteLLM in memory and never stored
(rows and summaries keep only the model string ``router/<group>``).

The Router runs on one background event loop: its async path is the one that enforces
``max_parallel_requests`` (a deployment with every slot busy answers 429 and the Router retries elsewhere),
and its async HTTP clients stay bound to one loop while many generation threads call in.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import litellm
import yaml
from litellm.llms.custom_llm import CustomLLM

from syneg_dspy.errors import InputError

ENV_VAR = "SYNEG_ROUTER_CONFIG"
ENV_REF = "os.environ/"
SECTIONS = ("model_list", "router_settings")
# The outer call's endpoint and retry settings: the router config's own apply (an outer max_retries=0
# would switch off the Router's retries). Sampling parameters and response_format go through.
_NOT_FORWARDED = {"api_key", "api_base", "stream", "max_retries", "num_retries"}


@dataclass
class LoadedRouter:
    path: Path
    router: litellm.Router
    groups: list[str]
    loop: asyncio.AbstractEventLoop


_routers: dict[tuple[str, int], LoadedRouter] = {}
_lock = threading.Lock()


def config_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$SYNEG_ROUTER_CONFIG``; neither is an InputError that says how to name one."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        raise InputError(f"router/ needs a LiteLLM router config: set {ENV_VAR}=PATH (or --router-config PATH)")
    return Path(path).expanduser().resolve()


def _router_settings_keys() -> set[str]:
    return set(inspect.signature(litellm.Router.__init__).parameters) - {"self", "model_list", "kwargs"}


def _env_refs(obj) -> list[str]:
    """Names of the environment variables an ``os.environ/VAR`` value anywhere in ``obj`` points to."""
    if isinstance(obj, dict):
        return [name for value in obj.values() for name in _env_refs(value)]
    if isinstance(obj, list):
        return [name for value in obj for name in _env_refs(value)]
    return [obj[len(ENV_REF):]] if isinstance(obj, str) and obj.startswith(ENV_REF) else []


def read_config(path: str | Path) -> dict:
    """The config as LiteLLM will read it, checked first so that mistakes are one line naming the file.

    Values are never echoed: a message names the entry and field, not what it holds (it may be a key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such router config file", file=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read router config: {type(err).__name__}", file=path) from None
    try:
        config = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err.msg}", file=path, line=err.lineno) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(err, 'problem', None) or 'cannot parse'}", file=path,
                         line=mark.line + 1 if mark else None) from None
    if not isinstance(config, dict):
        raise InputError("expected a mapping with model_list (and optionally router_settings)", file=path)
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise InputError(f"unsupported section(s) {', '.join(unknown)}; a router config has {' and '.join(SECTIONS)}",
                         file=path)
    models = config.get("model_list")
    if not isinstance(models, list) or not models:
        raise InputError("model_list must be a non-empty list of deployments", file=path)
    for i, entry in enumerate(models):
        where = f"model_list[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str) or not entry["model_name"]:
            raise InputError(f"{where}: needs a model_name (the group that router/<group> names)", file=path)
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str) or "/" not in params["model"]:
            raise InputError(f"{where}: litellm_params.model must be a LiteLLM model string such as "
                             "hosted_vllm/Qwen/Qwen2.5-7B-Instruct", file=path)
        if params["model"].startswith("router/"):
            raise InputError(f"{where}: a deployment cannot be router/ itself", file=path)
        for key in ("rpm", "tpm", "max_parallel_requests"):
            value = params.get(key, entry.get(key))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{where}: {key} must be a positive integer", file=path)
    settings = config.get("router_settings") or {}
    if not isinstance(settings, dict):
        raise InputError("router_settings must be a mapping", file=path)
    unknown = sorted(set(settings) - _router_settings_keys())
    if unknown:
        raise InputError(f"router_settings: unknown setting(s) {', '.join(unknown)} for litellm.Router", file=path)
    missing = sorted({name for name in _env_refs(config) if not os.environ.get(name)})
    if missing:
        raise InputError(f"environment variable(s) {', '.join(missing)} not set ({ENV_REF}... in the config)", file=path)
    return config


def _scrub(message: str, config: dict) -> str:
    """One line, with the values of the config's environment references (keys) masked."""
    for name in _env_refs(config):
        secret = os.environ.get(name)
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())


def load_router(path: str | Path | None = None) -> LoadedRouter:
    """The Router for a config file, built once per (path, mtime) and shared by every ``router/`` LM."""
    path = config_path(path)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise InputError("no such router config file", file=path) from None
    with _lock:
        if key in _routers:
            return _routers[key]
        config = read_config(path)
        try:
            router = litellm.Router(model_list=config["model_list"], **(config.get("router_settings") or {}))
        except Exception as err:  # LiteLLM's own checks (routing_strategy, fallbacks, ...) as one line
            raise InputError(f"litellm.Router rejected the config: {_scrub(str(err), config)}", file=path) from None
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name=f"syneg-router-{path.name}", daemon=True).start()
        atexit.register(_stop, loop)
        groups = sorted({entry["model_name"] for entry in config["model_list"]})
        _routers[key] = LoadedRouter(path, router, groups, loop)
        return _routers[key]


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    """At exit: cancel what LiteLLM left running on the loop (its logging worker), so no pending task is
    destroyed with the interpreter."""

    async def cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=2)
    except Exception:  # exiting anyway
        pass
    loop.call_soon_threadsafe(loop.stop)


def check_group(model_group: str, path: str | Path | None = None) -> LoadedRouter:
    """The loaded Router, if it serves ``model_group``; else one line listing the groups it has."""
    loaded = load_router(path)
    if model_group not in loaded.groups and model_group not in (loaded.router.model_group_alias or {}):
        raise InputError(f"no model group {model_group!r} (groups: {', '.join(loaded.groups)})", file=loaded.path)
    return loaded


def _config_of(litellm_params: dict | None) -> str | None:
    """The config path ``make_lm`` put into the call's metadata (None: fall back to the environment)."""
    metadata = (litellm_params or {}).get("metadata") or {}
    return metadata.get("router_config")


class RouterLLM(CustomLLM):
    """LiteLLM custom provider ``router``: ``router/<group>`` → ``litellm.Router.acompletion(model=<group>)``."""

    def _call(self, model: str, messages: list, optional_params: dict, litellm_params: dict | None):
        loaded = load_router(_config_of(litellm_params))
        kwargs = {k: v for k, v in optional_params.items() if k not in _NOT_FORWARDED}
        return loaded.loop, loaded.router.acompletion(model=model, messages=messages, **kwargs)

    def completion(self, model: str, messages: list, *args, optional_params: dict, litellm_params=None, **kwargs):
        loop, call = self._call(model, messages, optional_params, litellm_params)
        return asyncio.run_coroutine_threadsafe(call, loop).result()  # queued even if the loop is still starting

    async def acompletion(self, model: str, messages: list, *args, optional_params: dict, litellm_params=None,
                          **kwargs):
        loop, call = self._call(model, messages, optional_params, litellm_params)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, loop))


ROUTER = RouterLLM()
