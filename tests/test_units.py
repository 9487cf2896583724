"""units.py: sizes are binary whatever the suffix; token counts use k = 1024."""

from __future__ import annotations

import pytest

from edgekv.errors import SpecError
from edgekv.units import GIB, KIB, MIB, format_bytes, parse_size, parse_tokens


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [
        ("8G", 8 * GIB),
        ("8GiB", 8 * GIB),
        ("8GB", 8 * GIB),  # a card maker's "8 GB" holds 8 GiB
        ("8gb", 8 * GIB),
        (" 8 G ", 8 * GIB),
        ("7.5G", 7 * GIB + GIB // 2),
        ("8192M", 8 * GIB),
        ("8192MiB", 8 * GIB),
        ("512K", 512 * KIB),
        ("1T", 1024 * GIB),
        ("8589934592", 8 * GIB),  # a bare integer is bytes (from 1 MiB up)
        ("1048576", MIB),
        ("1024T", 1024 * 1024 * GIB),  # 1 PiB, the largest
        (8 * GIB, 8 * GIB),
    ],
)
def test_parse_size_accepts(text: str | int, n_bytes: int) -> None:
    assert parse_size(text) == n_bytes


@pytest.mark.parametrize(
    "text", ["8X", "-1G", "abc", "7.5", "", "0G", "8 GiBs", "G", "8", "4096", "1048575", "1025T", "9999999T"]
)
def test_parse_size_rejects_and_names_the_input(text: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_size(text)
    assert repr(text) in str(e.value)


@pytest.mark.parametrize("n", [0, -1, 2**50 + 1])
def test_parse_size_rejects_non_positive_ints(n: int) -> None:
    with pytest.raises(SpecError, match=str(n)):
        parse_size(n)


def test_a_missing_unit_is_named() -> None:
    with pytest.raises(SpecError) as e:
        parse_size("8")
    assert "'8' has no unit, so it would mean 8 bytes" in str(e.value) and "8G" in e.value.hint


@pytest.mark.parametrize(
    ("text", "n_tokens"),
    [("4k", 4096), ("32K", 32768), ("4096", 4096), ("1.5k", 1536), (" 16k ", 16384), ("0", 0), (30000, 30000)],
)
def test_parse_tokens(text: str | int, n_tokens: int) -> None:
    assert parse_tokens(text) == n_tokens


@pytest.mark.parametrize("text", ["abc", "4.5", "-4k", "4kb", "", "1.0001k"])
def test_parse_tokens_rejects(text: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_tokens(text)
    assert repr(text) in str(e.value)


@pytest.mark.parametrize(
    ("n_bytes", "unit", "text"),
    [
        (0, None, "0 B"),
        (1023, None, "1023 B"),
        (1536, None, "1.50 KiB"),
        (235.16 * MIB, None, "235.16 MiB"),
        (round(4.19 * GIB), None, "4.19 GiB"),
        (-458 * MIB, None, "-458.00 MiB"),
        (8 * GIB, "MiB", "8192.00 MiB"),
        (3 * MIB, "B", "3145728 B"),
    ],
)
def test_format_bytes(n_bytes: float, unit: str | None, text: str) -> None:
    assert format_bytes(n_bytes, unit=unit) == text


@pytest.mark.parametrize("text", ["0", "0G", "0GiB", "0MiB", "0.0G"])
def test_zero_sizes_only_where_allowed(text: str) -> None:
    assert parse_size(text, allow_zero=True) == 0
    with pytest.raises(SpecError):
        parse_size(text)


def test_zero_margin_and_overhead_reach_the_plan() -> None:
    from edgekv.plan.pick import pick
    from edgekv.plan.requests import PickRequest
    from edgekv.store.catalog import catalog_options

    margin, overhead = parse_size("0GiB", allow_zero=True), parse_size("0MiB", allow_zero=True)
    request = PickRequest(vram_bytes=parse_size("8G"), margin_bytes=margin, overhead_bytes=overhead, top=1)
    result = pick(request, catalog_options("qwen3"))
    assert result.budget.margin_bytes == 0 and result.budget.overhead_bytes == 0
    assert result.plans[0].footprint.margin == result.plans[0].footprint.overhead == 0
