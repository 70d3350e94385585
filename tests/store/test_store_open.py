"""Opening a store (issue 14, "store integrity"): fresh stores opened concurrently, busy is not
broken, empty or foreign files are refused, the log is checkpointed on close, network file
systems are refused for WAL, storage faults give a clear StoreError."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading

import pytest

from ablab.errors import StoreError
from ablab.store.db import Store


def test_concurrent_opens_of_a_fresh_store_all_succeed(tmp_path):
    errors: list[str] = []

    def open_it(barrier, d):
        barrier.wait()
        try:
            with Store(d) as st:
                st.register_driver()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    for i in range(12):  # today's main fails ~1 open in 200 here ("not a usable ablab store")
        b = threading.Barrier(10)
        ts = [threading.Thread(target=open_it, args=(b, tmp_path / f"s{i}")) for _ in range(10)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert errors == []
    with Store(tmp_path / "s0") as st:
        assert st.conn.execute("SELECT count(*) FROM drivers").fetchone()[0] == 10


def test_a_busy_store_is_called_busy_not_broken(tmp_path, monkeypatch):
    import ablab.store.connect as connect

    monkeypatch.setattr(connect, "BUSY_TIMEOUT_S", 0.5)
    Store(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "ablab.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="is busy") as e:
            Store(tmp_path)
        assert "damage" in e.value.hint and "broken" not in str(e.value)
    finally:
        holder.execute("COMMIT")


@pytest.mark.parametrize("content", [b"", b"\x00" * 50, b"hello, not a database" * 10])
def test_an_empty_or_foreign_ablab_db_is_refused_from_the_cli(tmp_path, content, cli, tools):
    path = tools.write_study(tmp_path)
    (tmp_path / ".ablab").mkdir()
    (tmp_path / ".ablab" / "ablab.db").write_bytes(content)
    code, out, err = cli("status", path)
    assert code == 2 and "Traceback" not in err
    assert ("is empty (0 bytes)" if not content else "is not an SQLite database") in err
    assert (tmp_path / ".ablab" / "ablab.db").read_bytes() == content  # left as it was


def test_close_checkpoints_the_log_into_the_database_file(tmp_path):
    other = Store(tmp_path / "st")  # another process keeps the store open (SQLite itself
    try:  # checkpoints only when the last connection closes)
        with Store(tmp_path / "st") as st:
            st.register_driver()
            assert os.path.getsize(tmp_path / "st" / "ablab.db-wal") > 0
        wal = tmp_path / "st" / "ablab.db-wal"
        assert wal.stat().st_size == 0  # TRUNCATE: everything is in ablab.db
        data = (tmp_path / "st" / "ablab.db").read_bytes()
    finally:
        other.close()
    copy = tmp_path / "copy"  # ablab.db alone holds every record
    copy.mkdir()
    (copy / "ablab.db").write_bytes(data)
    with Store(copy) as st:
        assert st.conn.execute("SELECT count(*) FROM drivers").fetchone()[0] == 1


MOUNTS = "/dev/vda / ext4 rw 0 0\nserver:/export {point} {fstype} rw,relatime 0 0\n"


@pytest.mark.parametrize("fstype", ["nfs4", "lustre", "gpfs", "cifs", "fuse.sshfs"])
def test_wal_is_refused_on_network_file_systems(tmp_path, monkeypatch, cli, tools, fstype):
    shared = tmp_path / "shared dir"
    path = tools.write_study(shared)
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS.format(point=str(shared).replace(" ", "\\040"), fstype=fstype))
    monkeypatch.setenv("ABLAB_MOUNTS", str(mounts))
    code, out, err = cli("status", path)
    assert code == 2 and f"on a {fstype} file system" in err and "local disk" in err
    assert not (shared / ".ablab" / "ablab.db").exists()
    local = tmp_path / "local"
    code, out, err = cli("status", path, "--store", local)  # the advice works
    assert code == 0, err
    monkeypatch.setenv("ABLAB_STORE_JOURNAL", "delete")  # the documented opt-out
    with Store(shared / ".ablab") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_malformed_database_gives_a_clear_error(tmp_path, cli, tools):
    path = tools.write_study(tmp_path)
    with Store(tmp_path / ".ablab") as st:
        st.conn.execute("CREATE TABLE filler (x)")
        with st.tx() as c:
            c.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 200)
    db = tmp_path / ".ablab" / "ablab.db"
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):  # scribble over every page but the header page
        data[page * 4096 : page * 4096 + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))
    code, out, err = cli("status", path)
    assert code == 2 and "Traceback" not in err
    assert "is damaged" in err and ".recover" in err


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def _mount_tmpfs(point, *opts):
    point.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(opts), "tmpfs", str(point)])
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


@root_only
def test_a_read_only_store_directory_gives_a_clear_error(tmp_path, cli, tools):
    path = tools.write_study(tmp_path)
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "size=1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        code, out, err = cli("status", path, "--store", ro / "store")
        assert code == 2 and "Traceback" not in err and "Read-only file system" in err
        code, out, err = cli("status", path, "--store", ro)
        assert code == 2 and "Traceback" not in err and "Read-only file system" in err
    finally:
        subprocess.run(["umount", str(ro)])


def test_artifacts_may_live_outside_the_store(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setenv("ABLAB_ARTIFACTS", str(shared))
    with Store(tmp_path / "st") as st:
        d = st.run_dir("abc")
        assert d == shared / "runs" / "abc"
        assert st.artifact_to_record(d / "model.pt") == str(d / "model.pt")  # absolute
