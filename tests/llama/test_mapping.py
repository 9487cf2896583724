"""Giving back the mapped pages of GPU tensors: which file ranges, and that madvise really drops them."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import pytest

from edgekv.llama.mapping import file_mappings, release_file_ranges
from edgekv.plan.placement import gpu_file_spans

# (name, offset in the data section, bytes): a 2-block MoE laid out as llama.cpp's converter does
TENSORS = [
    ("token_embd.weight", 0, 100),
    ("blk.0.attn_q.weight", 128, 50),
    ("blk.0.ffn_up_exps.weight", 192, 1000),
    ("blk.0.ffn_down_exps.weight", 1216, 1000),
    ("blk.1.attn_q.weight", 2240, 50),
    ("blk.1.ffn_up_exps.weight", 2304, 1000),
    ("output_norm.weight", 3328, 10),
    ("output.weight", 3360, 100),
]


@pytest.mark.parametrize(("ngl", "n_cpu_moe", "want"), [
    (-1, 1, [(128, 178), (2240, 3460)]),  # block 0's experts in RAM split the GPU tensors in two
    (-1, 0, [(128, 3460)]),  # every block on the GPU: one run, token_embd left out
    (-1, 2, [(128, 178), (2240, 2290), (3328, 3460)]),
    (0, 0, []),  # CPU only
    (1, 0, [(3328, 3460)]),  # -ngl 1: the output layer alone (llama.cpp's i_gpu_start = n_layer + 1 - ngl)
    (2, 0, [(2240, 3460)]),  # block 1 and the output
])  # fmt: skip
def test_gpu_file_spans(ngl: int, n_cpu_moe: int, want: list[tuple[int, int]]) -> None:
    assert gpu_file_spans(TENSORS, n_layer=2, n_gpu_layers=ngl, n_cpu_moe=n_cpu_moe) == want


def test_gpu_file_spans_follow_file_order_not_list_order() -> None:
    shuffled = [TENSORS[i] for i in (7, 3, 0, 5, 1, 6, 2, 4)]
    assert gpu_file_spans(shuffled, n_layer=2, n_gpu_layers=-1, n_cpu_moe=1) == [(128, 178), (2240, 3460)]


def _rss_file() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise on /proc/self/maps mappings: Linux")
def test_release_drops_resident_pages_and_keeps_the_data(tmp_path: Path) -> None:
    page = mmap.PAGESIZE
    n_pages = 4096  # 16 MiB at 4 KiB pages
    path = tmp_path / "m.gguf"
    data = bytes(range(256)) * (n_pages * page // 256)
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert sum(mm[i] for i in range(0, len(mm), page)) >= 0  # touch every page: resident
        (start, end, offset), *_ = [m for m in file_mappings(path) if m[1] - m[0] == len(data)]
        assert offset == 0 and end - start == len(data)
        before = _rss_file()
        # bytes 100 pages + 10 .. 3100 pages: whole pages 101..3099 go, the two partial pages stay
        released = release_file_ranges(path, [(100 * page + 10, 3100 * page)])
        assert released == 2999 * page
        dropped = before - _rss_file()
        assert dropped >= 0.9 * 2999 * page, f"RSS fell by {dropped} bytes only"
        assert mm[:] == data  # pages touched again fault back in from the file
    assert release_file_ranges(path, [(0, page)]) == 0  # no mapping left: nothing to do


def test_file_mappings_of_an_unmapped_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"0" * 100)
    assert file_mappings(path) == []
