"""edgekv.fsutil.atomic_output / write_atomic: the one write-then-rename."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from edgekv.errors import DiskFull
from edgekv.fsutil import atomic_output, write_atomic


def test_the_file_takes_its_name_only_when_whole(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    (tmp_path / "a.json.incomplete").write_text("a leftover of a killed run")
    seen: list[bytes] = []
    with atomic_output(out, before_rename=lambda tmp: seen.append(tmp.read_bytes())) as tmp:
        assert tmp.name == "a.json.incomplete" and not tmp.exists()  # the leftover is gone
        tmp.write_text("new")
        assert not out.exists()
    assert seen == [b"new"] and out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failure_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    out.write_text("old")
    with pytest.raises(KeyError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise KeyError("interrupted")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_full_disk_becomes_disk_full_with_the_numbers(tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    with pytest.raises(DiskFull) as e, atomic_output(out, need_bytes=4096) as tmp:
        tmp.write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(e.value)
    assert msg.startswith("the disk filled while writing m.gguf (")
    assert "it needs ~0.00 MiB (4096 bytes); 100 bytes were written" in msg
    assert e.value.need_bytes == 4096 and list(tmp_path.iterdir()) == []


def test_private_names_let_two_writers_share_a_file(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    with atomic_output(out, private=True) as a, atomic_output(out, private=True) as b:
        assert a != b and a.name.startswith("cache.json.") and a.name.endswith(".incomplete")
        a.write_text("a")
        b.write_text("b")
    assert out.read_text() == "a"  # the last rename wins (a's block ends last); neither is torn
    write_atomic(out, "é\n")
    assert out.read_bytes() == "é\n".encode() and sorted(p.name for p in tmp_path.iterdir()) == ["cache.json"]
