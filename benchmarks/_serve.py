"""Serve a seeded emulator on loopback in its own process, for the benchmark.

Prints one JSON line on stdout once listening (``url``, ``ids_file``, ``case_id``,
``user_uuid``, ``attachment_id``, ``attachment_sha256``: the SHA-256 of the preloaded attachment,
computed once before serving); then answers commands read from stdin, one a line, each with one
JSON line: ``stats`` (the emulator's counters), ``reset`` (zero them), ``attachment ID`` (``id``,
``size`` and ``sha256`` of the bytes the emulator stores for attachment ID, or ``error``). End of
stdin stops the server.

Example::

    python benchmarks/_serve.py --cases 10000 --latency 0.05 --ids-file /tmp/ids.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from falcon_mc.emulator import Emulator


def _stats(emu: Emulator) -> dict[str, Any]:
    stats = emu.stats
    return {
        "requests": dict(stats.requests),
        "responses": {str(k): v for k, v in stats.responses.items()},
        "rate_limited": stats.rate_limited,
        "tokens_issued": stats.tokens_issued,
        "bytes_uploaded": stats.bytes_uploaded,
        "bytes_downloaded": stats.bytes_downloaded,
    }


def _attachment(emu: Emulator, att_id: str) -> dict[str, Any]:
    record = emu.attachments.get(att_id)
    if record is None:
        return {"id": att_id, "error": "no such attachment"}
    return {"id": att_id, "size": record.size, "sha256": hashlib.sha256(record.data).hexdigest()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    parser.add_argument("--max-attachment-bytes", type=int, default=None)
    parser.add_argument("--attachment-bytes", type=int, default=0,
                        help="preload an attachment big.pdf of this many bytes")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="emulator download chunk size (default: the emulator's)")
    parser.add_argument("--ids-file", required=True)
    args = parser.parse_args(argv)

    emu = Emulator.seeded(n_cases=args.cases, seed=args.seed)
    emu.settings.latency = args.latency
    emu.settings.rate_limit_per_minute = args.rate_limit
    # FalconPy 1.6.6 "autodiscovers" the cloud from X-Cs-Region and, comparing "us1" with "US1"
    # case-sensitively, would switch base_url to https://api.crowdstrike.com; a region name that
    # is no cloud keeps it on the emulator.
    emu.settings.region = "emulator"
    if args.max_attachment_bytes is not None:
        emu.settings.max_attachment_bytes = args.max_attachment_bytes
    if args.chunk_size is not None:
        emu.settings.chunk_size = args.chunk_size
    ids = list(emu.cases)
    Path(args.ids_file).write_text("\n".join(ids) + "\n")
    case_id = ids[0]
    user_uuid = next(iter(emu.users))
    attachment_id: str | None = None
    attachment_sha256: str | None = None
    if args.attachment_bytes:
        pattern = b"falcon-mc benchmark attachment line 0123456789abcdefghijklmnopqrstuvwxyz\n"
        data = (pattern * (args.attachment_bytes // len(pattern) + 1))[: args.attachment_bytes]
        attachment_id = emu.add_attachment(case_id, "big.pdf", data, user_uuid=user_uuid)
        attachment_sha256 = hashlib.sha256(data).hexdigest()
        del data

    with emu.serve(host="127.0.0.1", port=0) as url:
        ready = {
            "url": url,
            "ids_file": args.ids_file,
            "case_id": case_id,
            "user_uuid": user_uuid,
            "attachment_id": attachment_id,
            "attachment_sha256": attachment_sha256,
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(_stats(emu)), flush=True)
            elif command == "reset":
                emu.stats.reset()
                print("{}", flush=True)
            elif command.startswith("attachment "):
                print(json.dumps(_attachment(emu, command.split(maxsplit=1)[1])), flush=True)
            elif command:  # an answer for every command, so that no caller waits forever
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)


if __name__ == "__main__":
    main()
