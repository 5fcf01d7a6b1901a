"""Atomic writes: the whole buffer or the old file, never a half file or a stray temp file."""

import errno
import os

import pytest

from workbench.fsutil import atomic_write


def test_atomic_write_writes_every_byte_through_short_writes(tmp_path, monkeypatch):
    real = os.write
    calls = []

    def short(fd, data):  # a file system that takes at most 7 bytes per call
        calls.append(len(data))
        return real(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short)
    data = bytes(range(256)) * 3
    assert atomic_write(tmp_path / "a" / "f.bin", data, fsync=False) == len(data)
    assert (tmp_path / "a" / "f.bin").read_bytes() == data
    assert len(calls) == -(-len(data) // 7)
    assert atomic_write(tmp_path / "t.txt", "héllo") == len("héllo".encode())
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]
    # and the temporary name is free again for the next write of this process and thread
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["f.bin"]
