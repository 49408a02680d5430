"""Runs a client driver (tests/compat/drive_*.py) in a subprocess and reads the JSON it prints.

The server runs in the test's event loop, so the driver is awaited with asyncio's subprocess API: a
blocking subprocess.run would freeze the server the client is talking to.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def drive(script: str, client: Path, workdir: Path, *args: str, timeout: float = 300) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(client),  # the client from PyPI, not anything installed in the venv
        "HOME": str(workdir),  # the CLI reads ~/.porscheconnect.cfg
        "PYTHONUNBUFFERED": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=workdir,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{script} did not finish within {timeout} s") from None
    log = stderr.decode(errors="replace")
    assert process.returncode == 0, f"{script} exited with {process.returncode}:\n{log[-6000:]}"
    lines = stdout.decode().strip().splitlines()
    assert lines, f"{script} printed nothing:\n{log[-6000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr"] = log
    return result


def png_pixel(png: bytes, x: int, y: int) -> tuple[int, ...]:
    """The RGBA pixel of one of our PNGs (8-bit RGBA, filter 0 on every row, as pictures.Canvas writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    data, offset = b"", 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(data)
    stride = 1 + width * 4
    start = y * stride + 1 + x * 4
    return tuple(raw[start : start + 4])
