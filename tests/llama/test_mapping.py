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


def _touch_all(mm: mmap.mmap) -> None:
    assert sum(mm[i] for i in range(0, len(mm), mmap.PAGESIZE)) >= 0


def _gpu_bytes_by_hand(path: Path, *, n_cpu_moe: int) -> int:
    """The GPU tensors' bytes as gguf-py reads them: every block tensor except the experts of blocks below
    ``n_cpu_moe``, and the output layer (all layers offloaded)."""
    import gguf

    total = 0
    for t in gguf.GGUFReader(path).tensors:
        if t.name.startswith("blk."):
            block = int(t.name.split(".")[1])
            if block < n_cpu_moe and "_exps" in t.name:
                continue
            total += int(t.n_bytes)
        elif t.name in ("output.weight", "output_norm.weight"):
            total += int(t.n_bytes)
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise on /proc/self/maps mappings: Linux")
def test_release_gpu_tensors_of_a_moe_gguf(tmp_path: Path) -> None:
    """A mapped MoE GGUF (4 blocks, the experts of the first 2 in RAM): the pages given back are those of
    the GPU tensors, less at most a page at each end of each run of them."""
    from edgekv.llama.mapping import release_gpu_tensors
    from tests.ggufgen import tiny_config, write_sparse_gguf

    config = tiny_config("Qwen3MoeForCausalLM", hidden_size=1024, moe_intermediate_size=1024, num_hidden_layers=4)
    path = write_sparse_gguf(tmp_path / "moe.gguf", config, n_expert=8)
    want = _gpu_bytes_by_hand(path, n_cpu_moe=2)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        _touch_all(mm)
        before = _rss_file()
        released = release_gpu_tensors(path, n_gpu_layers=-1, n_cpu_moe=2)
        # runs of GPU tensors: blk.0's and blk.1's non-expert tensors (each ended by its experts), then
        # blk.2 .. output in one run (3 runs at most, 2 partial pages each)
        assert want - 6 * mmap.PAGESIZE <= released <= want
        assert before - _rss_file() >= 0.9 * released
        assert release_gpu_tensors(path, n_gpu_layers=0, n_cpu_moe=2) == 0  # CPU only: nothing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise on /proc/self/maps mappings: Linux")
def test_release_gpu_tensors_walks_every_shard(tmp_path: Path) -> None:
    """A GGUF split in two (as gguf-split names them): the GPU tensors of both shards are given back."""
    import gguf
    import numpy as np

    from edgekv.llama.mapping import release_gpu_tensors, shard_paths

    n = 256 * 1024  # f32 values: 1 MiB a tensor
    layout = {1: ["token_embd.weight", "blk.0.attn_q.weight"], 2: ["blk.1.attn_q.weight", "output.weight"]}
    paths = []
    for no, names in layout.items():
        p = tmp_path / f"m-{no:05d}-of-00002.gguf"
        w = gguf.GGUFWriter(p, "llama")
        w.add_uint32("llama.block_count", 2)
        w.add_uint16("split.no", no - 1)
        w.add_uint16("split.count", 2)
        for name in names:
            w.add_tensor(name, np.ones(n, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        paths.append(p)
    assert shard_paths(paths[0]) == paths and shard_paths(tmp_path / "x.gguf") == [tmp_path / "x.gguf"]
    with paths[0].open("rb") as f1, paths[1].open("rb") as f2:
        with (
            mmap.mmap(f1.fileno(), 0, access=mmap.ACCESS_READ) as m1,
            mmap.mmap(f2.fileno(), 0, access=mmap.ACCESS_READ) as m2,
        ):
            _touch_all(m1)
            _touch_all(m2)
            released = release_gpu_tensors(paths[0], n_gpu_layers=-1, n_cpu_moe=0)
            # shard 1: blk.0.attn_q (1 MiB, after token_embd); shard 2: blk.1.attn_q + output (2 MiB)
            assert 3 * 4 * n - 4 * mmap.PAGESIZE <= released <= 3 * 4 * n
