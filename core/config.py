"""One settings system for every process: a frozen pydantic model per component, read
from the same sources in the same order, with the same errors.

Sources, later ones winning: the model's defaults, a YAML file, `<PREFIX><FIELD>`
environment variables (lists comma-separated), then explicit overrides (CLI options;
None means "not given"). Each model states its fields' units, defaults and bounds
(`Field(gt=0)`, ...) beside them. A bad value raises `SettingsError`, which names the
field, the value, what is wrong and the environment variable that sets it.

This is a thin loader over pydantic rather than pydantic-settings: the three sources
are 30 lines here, callers and tests inject the environment as a mapping, and the error
is the one above for every component (pydantic-settings reads `os.environ` only and
reports its own format).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from homeport.core.errors import InvalidArgument
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SettingsError(InvalidArgument, ValueError):
    """A setting is missing or malformed; the message names it, its value, the fix and
    where it comes from."""


def read_yaml(path: Path, error: Callable[[str, str, str], Exception], field: str) -> Any:
    """The YAML document in `path`; `error(field, path, reason)` when it cannot be read
    or parsed. Every YAML file homeport reads (settings, topology, scenarios) goes
    through here."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(field, str(path), f"cannot read: {exc.strerror}") from exc
    # Imported here: a worker or gateway given no file never parses YAML, and PyYAML's
    # import is 10-17 ms of a process start (issue 16: start to first task).
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(field, str(path), f"not valid YAML: {exc}") from exc


def from_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of setting: value ({} for an empty file)."""
    data = read_yaml(path, SettingsError, "config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError("config", str(path), "must be a YAML mapping of setting: value")
    return data


def from_env(model: type[BaseModel], prefix: str, env: Mapping[str, str]) -> dict[str, Any]:
    """`<prefix><FIELD>` variables of `model`'s fields; tuple fields split at commas."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        raw = env.get(prefix + name.upper())
        if raw is None:
            continue
        is_list = _is_sequence(field.annotation)
        out[name] = tuple(v for v in raw.split(",") if v) if is_list else raw
    return out


def _is_sequence(annotation: Any) -> bool:
    """True for tuple/list fields, also inside `X | None`."""
    origin = get_origin(annotation)
    if origin in (tuple, list):
        return True
    if origin in (Union, UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation))
    return False


def validate(model: type[M], values: Mapping[str, Any], prefix: str) -> M:
    """`model` from `values`, or a `SettingsError` naming the first bad field."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            reason = f"unknown setting; known: {known}"
            raise SettingsError(field, err.get("input"), reason) from None
        hint = f" (env {prefix}{field.upper()})" if field in model.model_fields else ""
        raise SettingsError(field, err.get("input"), f"{err['msg']}{hint}") from None


def load(
    model: type[M],
    prefix: str,
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> M:
    """Defaults < YAML file at `path` < environment < `overrides` (see module docs)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = from_file(Path(path)) if path else {}
    values.update(from_env(model, prefix, env))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate(model, values, prefix)
