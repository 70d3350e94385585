"""The driver <-> worker channel: framed, keyed, checked pickles over a socket pair.

A run executes arbitrary user code in the worker, and that code inherits the worker's end of
the channel as a file descriptor. multiprocessing's ``Connection`` trusts its 4-byte length
header, so an entry that writes stray bytes to that descriptor (a logging library that grabs
fd N, a loop over ``/proc/self/fd``) leaves the driver blocked forever in ``recv`` waiting for
bytes that never come, and no timeout can fire. Nothing in the standard library reads a stream
incrementally with a deadline and a per-message check, so this module does, in ~100 lines:

- every frame is ``token (16 random bytes, per worker) | length (8 bytes) | payload | digest``
  where ``digest = BLAKE2b(payload, key=token)``; a frame that does not start with the token,
  announces more than :data:`MAX_FRAME` bytes or fails the digest is garbage;
- the driver reads without blocking into a buffer and only unpickles complete, checked frames,
  so a half-written or garbage stream never blocks it and the run's timeout still fires;
- the worker moves its end to a high, random descriptor number, away from the small numbers a
  careless write hits first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import random
import socket
import struct
from typing import Any

TOKEN_BYTES = 16
DIGEST_BYTES = 16
HEADER = struct.Struct(">Q")
MAX_FRAME = 2**31  # 2 GiB: more than any run's records; a larger length is garbage


class ChannelError(Exception):
    """The stream holds bytes that are not a frame of this channel."""


class Channel:
    """One end of the channel. ``send`` blocks; ``recv`` blocks (the worker waiting for a
    task); ``receive_ready`` never blocks (the driver)."""

    def __init__(self, sock: socket.socket, token: bytes) -> None:
        self.sock = sock
        self.token = token
        self._buf = bytearray()

    @classmethod
    def pair(cls) -> tuple[Channel, tuple[socket.socket, bytes]]:
        """The driver's end, and what the worker needs to build its end."""
        a, b = socket.socketpair()
        token = os.urandom(TOKEN_BYTES)
        return cls(a, token), (b, token)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def move_high(self) -> None:
        """Move this end to a random descriptor number in 600..999 (close-on-exec)."""
        low = 600 + random.SystemRandom().randrange(400)
        try:
            fd = fcntl.fcntl(self.sock.fileno(), fcntl.F_DUPFD_CLOEXEC, low)
        except OSError:
            return
        old = self.sock
        self.sock = socket.socket(fileno=fd)
        old.close()

    def _frame(self, payload: bytes) -> bytes:
        digest = hashlib.blake2b(payload, key=self.token, digest_size=DIGEST_BYTES).digest()
        return self.token + HEADER.pack(len(payload)) + payload + digest

    def send(self, obj: Any) -> None:
        self.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, payload: bytes) -> None:
        self.sock.setblocking(True)
        self.sock.sendall(self._frame(payload))

    def recv(self) -> Any:
        """Block until one whole frame arrives; EOFError when the other end closed."""
        self.sock.setblocking(True)
        while True:
            msgs = self._parse(limit=1)
            if msgs:
                return msgs[0]
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the other end closed the channel")
            self._buf += chunk

    def receive_ready(self) -> tuple[list[Any], bool]:
        """``(messages, closed)``: every complete frame that has arrived, without blocking;
        ``closed`` when the other end has gone. Raises :class:`ChannelError` on garbage."""
        self.sock.setblocking(False)
        closed = False
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            self._buf += chunk
            self._check_header()
        return self._parse(), closed

    def _check_header(self) -> None:
        n = TOKEN_BYTES + HEADER.size
        k = min(len(self._buf), TOKEN_BYTES)
        if bytes(self._buf[:k]) != self.token[:k]:
            raise ChannelError(_garbage(self._buf))
        if len(self._buf) >= n:
            (length,) = HEADER.unpack_from(self._buf, TOKEN_BYTES)
            if length > MAX_FRAME:
                raise ChannelError(f"a frame announced {length} bytes (limit {MAX_FRAME})")

    def _parse(self, limit: int | None = None) -> list[Any]:
        out: list[Any] = []
        n = TOKEN_BYTES + HEADER.size
        while self._buf and (limit is None or len(out) < limit):
            self._check_header()
            if len(self._buf) < n:
                break
            (length,) = HEADER.unpack_from(self._buf, TOKEN_BYTES)
            end = n + length + DIGEST_BYTES
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[n : n + length])
            digest = hashlib.blake2b(payload, key=self.token, digest_size=DIGEST_BYTES).digest()
            if digest != bytes(self._buf[n + length : end]):
                raise ChannelError("a frame's checksum does not match its contents")
            del self._buf[:end]
            try:
                out.append(pickle.loads(payload))
            except Exception as e:  # noqa: BLE001 - checked bytes that still do not unpickle
                raise ChannelError(f"a checked frame does not unpickle: {e}") from None
        return out


def _garbage(buf: bytearray) -> str:
    head = bytes(buf[:24])
    return f"unexpected bytes {head!r}{'...' if len(buf) > 24 else ''}"
