"""Read the records of a W&B offline run file (``run-<id>.wandb``) for the sync tests.

wandb >= 0.19 writes these files from its Go core and no longer ships a Python reader. The
format is a 7-byte header (``:W&B``, a 2-byte magic, a version byte) followed by LevelDB's
log format: 32 KiB blocks of records, each with a 7-byte header (CRC32C, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last), a record split across blocks in pieces.
The payloads are ``wandb_internal_pb2.Record`` protobuf messages. Written by hand because no
kept library reads it; only what the tests need (checksums are not verified).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            pending = chunk
        elif kind == 2:
            pending = chunk
            continue
        elif kind == 3:
            pending += chunk
            continue
        else:
            pending += chunk
        rec = pb.Record()
        rec.ParseFromString(pending)
        pending = b""
        yield rec


def summary_of(path: Path) -> dict:
    """The run's config, history (step -> {key: value}) and final summary."""
    out = {"config": {}, "history": {}, "summary": {}, "exit_code": None, "id": None, "group": None}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["group"] = rec.run.run_id, rec.run.run_group
            for item in rec.run.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in rec.history.item}
            out["history"][row.get("_step")] = row
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
