"""The one atomic writer: whole files or none, with the permissions a file written in place would have."""
from __future__ import annotations

import os
import stat

import pytest

import atomic


def test_a_new_file_gets_the_permissions_of_open_and_no_staged_file_is_left(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic.write_atomically(tmp_path / "results.json", "{}\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644
    assert (tmp_path / "results.json").read_text() == "{}\n" and os.listdir(tmp_path) == ["results.json"]


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    file = tmp_path / "model.npz"
    file.write_bytes(b"old")
    file.chmod(0o640)
    atomic.write_atomically(file, b"new")
    assert file.read_bytes() == b"new" and stat.S_IMODE(file.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    file = tmp_path / "model.npz"
    file.write_bytes(b"old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic.write_atomically(file, b"new")
    assert file.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.npz"]
