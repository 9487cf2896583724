"""Calibration profiles: ``edgekv calibrate`` writes one, ``edgekv pick --profile NAME`` reads it.

A profile is ``settings.user_dir()/profiles/NAME.json`` (schema 1): the fitted constants with their
bootstrap intervals (``constants``) and the Policy fields pick takes from them (``policy``).
Stdlib only: the pick path imports this module.

Which fitted value becomes a Policy field (``policy_fields``):
* an estimate is used as it is;
* a bound is used only where it contradicts the paper's default (E1 ``at_least`` 6 GiB moves the
  default 4.19 GiB up to 6 GiB; ``at_least`` 2 GiB keeps 4.19 GiB): the smallest change to the
  rule the measurements ask for;
* a constant the sweep could not determine keeps the paper's default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekv.errors import ModelFileNotFound, ProfileFileError, SpecError
from edgekv.fsutil import read_json_document, write_atomic
from edgekv.plan.plans import E1_BYTES, SATURATION_TOKENS
from edgekv.settings import user_dir
from edgekv.units import MAX_SIZE

SCHEMA = 1
MAX_PROFILE_BYTES = 1 << 20  # a profile is a few KiB
PAPER_DEFAULTS: dict[str, Any] = {
    "e1_bytes": E1_BYTES,
    "saturation_tokens": SATURATION_TOKENS,
    "flat_precision": False,
    "q4_kv_ok": False,
    "parallel_min_bytes": 0,
}
FLAGS = {  # Policy field -> pick's flag, for messages
    "e1_bytes": "--e1", "saturation_tokens": "--saturation", "flat_precision": None, "q4_kv_ok": None,
    "parallel_min_bytes": None,
}  # fmt: skip


def profiles_dir() -> Path:
    return user_dir() / "profiles"


def profile_path(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise SpecError(f"profile name {name!r} is not a plain name", hint="use letters, digits, . _ -")
    return profiles_dir() / f"{name}.json"


def write_profile(data: Mapping[str, Any], name: str, *, force: bool = False) -> Path:
    """Write a profile atomically (``.incomplete`` then rename); an existing one needs ``force``."""
    from edgekv.errors import OutputExists

    path = profile_path(name)
    if path.exists() and not force:
        raise OutputExists(f"profile {name!r} exists at {path}", hint="pass --force to replace it, or --name another")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")
    return path


def load_profile(name: str) -> dict[str, Any]:
    """A profile by name (or a path to a profile JSON file).

    Raises:
        ModelFileNotFound: no such profile; SpecError: not a profile.
    """
    path = Path(name) if name.endswith(".json") else profile_path(name)
    if not path.is_file():
        known = sorted(p.stem for p in profiles_dir().glob("*.json")) if profiles_dir().is_dir() else []
        raise ModelFileNotFound(
            f"no calibration profile {name!r} ({path})",
            hint=f"profiles: {', '.join(known)}" if known else "make one with edgekv calibrate RESULTS --name NAME",
        )
    data = read_json_document(path, what="profile", error=ProfileFileError, max_bytes=MAX_PROFILE_BYTES)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("policy"), dict):
        raise ProfileFileError(f"{path} is not an edgekv profile of schema {SCHEMA}")
    policy = data["policy"]
    checks = [(k, policy[k], PAPER_DEFAULTS[k]) for k in PAPER_DEFAULTS if k in policy]
    by_acc = policy.get("parallel_min_bytes_by_accounting", {})
    if not isinstance(by_acc, dict):
        raise ProfileFileError(f"{path}: policy.parallel_min_bytes_by_accounting = {by_acc!r:.40} is not an object")
    checks += [(f"parallel_min_bytes_by_accounting.{k}", v, 0) for k, v in by_acc.items()]
    for key, value, default in checks:
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        else:  # a count of bytes or tokens
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE
        if not ok:
            want = "true or false" if isinstance(default, bool) else "a whole number >= 0"
            raise ProfileFileError(f"{path}: policy.{key} = {value!r:.40} is not {want}")
    return data


def resolve(default: float, value: float | None, kind: str) -> float:
    """The Policy value for a fitted constant (module docstring: bounds only where they contradict)."""
    if value is None or kind == "undetermined":
        return default
    if kind == "at_least":
        return max(default, value)
    if kind == "at_most":
        return min(default, value)
    return value


@dataclass(frozen=True, slots=True)
class Applied:
    """One Policy field of a pick: where its value came from (flag, profile or the paper's default)."""

    field: str
    value: Any
    default: Any
    source: str  # "profile" | "flag" | "default"
    evidence: str = ""  # for a profile's value: the problems, the interval and the resamples behind it


# Policy field -> the fitted constant of the profile it comes from
CONSTANT_OF = {"e1_bytes": "e1_bytes", "saturation_tokens": "saturation_tokens",
               "flat_precision": "q4_weights_on_frontier", "q4_kv_ok": "q4_kv_on_frontier",
               "parallel_min_bytes": "parallel_min_bytes"}  # fmt: skip


def evidence(profile: Mapping[str, Any], field: str, *, accounting: str) -> str:
    """How much evidence a profile's value stands on: "fitted on 40 problems, 95% interval 4.00 GiB ..
    4.40 GiB, in 200 of 200 resamples" (a finding: "in 92% of 200 resamples"). Empty if the profile
    does not say (an older profile)."""
    from edgekv.units import format_bytes

    consts = profile.get("constants")
    fit = profile.get("fit") or {}
    c = consts.get(CONSTANT_OF.get(field, ""), None) if isinstance(consts, dict) else None
    if isinstance(c, dict) and field == "parallel_min_bytes":
        c = c.get(accounting)
    if not isinstance(c, dict):
        return ""
    n, draws = profile.get("n_problems"), fit.get("bootstrap")
    head = f"fitted on {n} problems"
    if "share" in c:
        return f"{head}, in {c['share']:.0%} of {draws} resamples"
    if c.get("low") is None or c.get("high") is None:
        return head

    def show(x: float) -> str:
        return f"{int(x)} tokens" if field == "saturation_tokens" else format_bytes(int(x))

    level = fit.get("level", 0.95)
    span = f"{level:.0%} interval {show(c['low'])} .. {show(c['high'])}"
    return f"{head}, {span}, in {c.get('n_defined')} of {draws} resamples"


def policy_fields(profile: Mapping[str, Any], *, accounting: str) -> dict[str, Any]:
    """pick()'s keyword arguments the profile sets (parallel_min_bytes in ``accounting``)."""
    pol = dict(profile["policy"])
    by_acc = pol.pop("parallel_min_bytes_by_accounting", None)
    if isinstance(by_acc, dict) and accounting in by_acc:
        pol["parallel_min_bytes"] = by_acc[accounting]
    return {k: v for k, v in pol.items() if k in PAPER_DEFAULTS}


def applied(profile: Mapping[str, Any], *, accounting: str, given: set[str]) -> list[Applied]:
    """Each constant of a pick with a profile: its value and its source (a flag wins over the profile)."""
    fields = policy_fields(profile, accounting=accounting)
    out: list[Applied] = []
    for name, default in PAPER_DEFAULTS.items():
        if name in given:
            out.append(Applied(name, None, default, "flag"))
        elif name in fields and fields[name] != default:
            out.append(Applied(name, fields[name], default, "profile", evidence(profile, name, accounting=accounting)))
        else:
            out.append(Applied(name, default, default, "default"))
    return out


def capacity_overrides(profile: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """The profile's measured Qwen3-equivalent sizes (``eval.calibrate.measured_capacity``): model name ->
    (parameters, how it was read). Entries that are not a positive whole number are ignored."""
    raw = profile.get("capacity")
    if not isinstance(raw, dict):
        return {}
    out: dict[str, tuple[int, str]] = {}
    for name, v in raw.items():
        n = v.get("n_params") if isinstance(v, dict) else None
        if isinstance(name, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0:
            out[name] = (n, str(v.get("note", "")))
    return out
