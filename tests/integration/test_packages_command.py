"""`carlink packages`: an operator publishes a file for the cars, lists it with its signed metadata, and
rotates a key (issue 6, docs/packages.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.integration.test_catalog_command import carlink


def listing(tmp_path: Path) -> dict[str, Any]:
    done = carlink(tmp_path, "packages", "list", "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_operator_adds_a_package_and_rotates_the_targets_key(tmp_path: Path) -> None:
    first = listing(tmp_path)
    assert first["packages"] == [] and first["root_version"] == 1 and first["targets_version"] == 1

    data = b"matrix-lights " * 1000
    file = tmp_path / "matrix-lights.bin"
    file.write_bytes(data)
    custom = ("--custom", '{"function": "matrix_lights"}')
    added = carlink(tmp_path, "packages", "add", str(file), *custom)
    assert added.returncode == 0, added.stderr
    after = listing(tmp_path)
    [package] = after["packages"]
    assert package["name"] == "matrix-lights.bin" and package["length"] == len(data)
    assert package["sha256"] == hashlib.sha256(data).hexdigest()
    assert package["custom"] == {"function": "matrix_lights"}
    assert after["targets_version"] == 2
    # The same content (and custom data) again signs nothing new.
    assert carlink(tmp_path, "packages", "add", str(file), *custom).returncode == 0
    assert listing(tmp_path)["targets_version"] == 2

    rotated = carlink(tmp_path, "packages", "rotate-key", "targets")
    assert rotated.returncode == 0, rotated.stderr
    final = listing(tmp_path)
    assert final["root_version"] == 2 and final["targets_version"] == 3
    targets_keys = [key for key in final["keys"] if key["role"] == "targets"]
    assert len(targets_keys) == 2 and sum(key["retired_at"] is None for key in targets_keys) == 1
    # An unknown role is refused with a plain exit code.
    assert carlink(tmp_path, "packages", "rotate-key", "nobody").returncode != 0
