"""Content hashes of arrays, tensors, files and directories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablab.errors import DataError
from ablab.runtime.hashing import hash_data


def test_arrays_equal_content_equal_hash():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    kind, h = hash_data(a)
    assert kind == "array" and len(h) == 64
    assert hash_data(a.copy())[1] == h
    assert hash_data(np.asfortranarray(a))[1] == h  # memory layout does not matter
    assert hash_data(a.T.copy().T)[1] == h


def test_arrays_any_change_changes_hash():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    h = hash_data(a)[1]
    b = a.copy()
    b[2, 3] = np.nextafter(b[2, 3], np.inf)  # one ulp
    assert hash_data(b)[1] != h
    assert hash_data(a.reshape(4, 3))[1] != h  # same bytes, other shape
    assert hash_data(a.astype(np.float64))[1] != h
    assert hash_data(a.view(np.int32))[1] != h  # same bytes, other dtype


def test_tensor_hashes_like_the_same_ndarray():
    a = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    t = torch.from_numpy(a.copy())
    assert hash_data(t) == hash_data(a)
    assert hash_data(t.t().contiguous().t())[1] == hash_data(a)[1]  # non-contiguous view
    assert hash_data(t.clone().requires_grad_(True))[1] == hash_data(a)[1]
    t2 = t.clone()
    t2[0, 0] += 1
    assert hash_data(t2)[1] != hash_data(a)[1]
    assert hash_data(t.double())[1] != hash_data(a)[1]


def test_files(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"hello world")
    kind, h = hash_data(f)
    assert kind == "file"
    assert hash_data(str(f)) == (kind, h)
    g = tmp_path / "copy.bin"
    g.write_bytes(b"hello world")
    assert hash_data(g)[1] == h  # content, not name
    g.write_bytes(b"hello worle")
    assert hash_data(g)[1] != h
    assert hash_data(b"hello world") == ("bytes", h)


def test_directories(tmp_path):
    def make(root, files):
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return root

    files = {"a.txt": b"1", "sub/b.txt": b"2", ".hidden": b"3"}
    d1 = make(tmp_path / "d1", files)
    d2 = make(tmp_path / "d2", dict(reversed(list(files.items()))))
    kind, h = hash_data(d1)
    assert kind == "directory" and hash_data(d2)[1] == h
    (d2 / "sub" / "b.txt").write_bytes(b"2!")
    assert hash_data(d2)[1] != h
    d3 = make(tmp_path / "d3", {"a.txt": b"1", "sub/c.txt": b"2", ".hidden": b"3"})  # a rename
    assert hash_data(d3)[1] != h
    d4 = make(tmp_path / "d4", {**files, "new.txt": b""})  # an added empty file
    assert hash_data(d4)[1] != h
    d5 = make(tmp_path / "d5", {"a.txt": b"1", "sub/b.txt": b"2"})  # hidden file removed
    assert hash_data(d5)[1] != h


def test_unhashable_inputs_are_user_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        hash_data(str(tmp_path / "missing.npy"))
    with pytest.raises(DataError, match="cannot hash an object of type dict"):
        hash_data({"a": 1})
