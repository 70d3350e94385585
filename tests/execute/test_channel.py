"""The driver/worker channel: checked frames, never a blocking read on the driver's side."""

from __future__ import annotations

import pytest

from ablab.execute.channel import Channel, ChannelError


@pytest.fixture
def ends():
    driver, (sock, token) = Channel.pair()
    worker = Channel(sock, token)
    yield driver, worker
    driver.close()
    worker.close()


def test_frames_round_trip_and_partial_frames_do_not_block(ends):
    driver, worker = ends
    assert driver.receive_ready() == ([], False)  # nothing there: returns at once
    worker.send("started")
    worker.send({"key": "k", "metrics": {"a": float("inf")}})
    frame = worker._frame(b"\x80\x05K\x07.")  # pickle of 7
    worker.sock.sendall(frame[:10])  # half a frame: kept for later, nothing returned
    msgs, closed = driver.receive_ready()
    assert msgs == ["started", {"key": "k", "metrics": {"a": float("inf")}}] and not closed
    worker.sock.sendall(frame[10:])
    assert driver.receive_ready() == ([7], False)
    driver.send({"task": 1})
    assert worker.recv() == {"task": 1}
    worker.close()
    assert driver.receive_ready() == ([], True)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x10\x00",  # what a stray write of a 'length' looks like to multiprocessing
        b"\xff" * 64,
        b"x",
    ],
)
def test_garbage_is_detected_at_once(ends, garbage):
    driver, worker = ends
    worker.sock.sendall(garbage)
    with pytest.raises(ChannelError, match="unexpected bytes"):
        driver.receive_ready()


def test_a_forged_length_or_a_bad_digest_is_garbage(ends):
    driver, worker = ends
    worker.sock.sendall(worker.token + (2**40).to_bytes(8, "big"))
    with pytest.raises(ChannelError, match="announced"):
        driver.receive_ready()
    d2, (sock, token) = Channel.pair()
    w2 = Channel(sock, token)
    frame = bytearray(w2._frame(b"\x80\x05K\x07."))
    frame[-1] ^= 1
    w2.sock.sendall(bytes(frame))
    with pytest.raises(ChannelError, match="checksum"):
        d2.receive_ready()
    d2.close()
    w2.close()
