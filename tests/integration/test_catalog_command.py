"""`carlink catalog`: an operator lists offers, changes a price and publishes terms from the command line
(STO-1, STO-6); earlier versions stay as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def carlink(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CARLINK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'carlink.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "carlink.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def offers(tmp_path: Path, country: str) -> list[dict[str, Any]]:
    done = carlink(tmp_path, "catalog", "list", "--country", country, "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def test_operator_changes_a_price_and_the_old_offer_is_retired_not_edited(tmp_path: Path) -> None:
    japan = offers(tmp_path, "JP")
    remote = next(r for r in japan if r["service"] == "remote-services" and r["term"] == "P1Y")
    assert remote["currency"] == "JPY" and remote["price_minor"] == 13200  # whole yen
    assert any(r["service"] == "carrier-connect" for r in japan)
    assert not any(r["service"] == "carrier-connect" for r in offers(tmp_path, "DE"))

    done = carlink(tmp_path, "catalog", "set-price", str(remote["offer_id"]), "14300")
    assert done.returncode == 0, done.stderr
    now = next(r for r in offers(tmp_path, "JP") if r["service"] == "remote-services" and r["term"] == "P1Y")
    assert now["price_minor"] == 14300 and now["version"] == 2 and now["offer_id"] != remote["offer_id"]

    again = carlink(tmp_path, "catalog", "set-price", str(remote["offer_id"]), "1")
    assert again.returncode == 1 and "not in force" in again.stdout


def test_operator_publishes_the_next_terms_version(tmp_path: Path) -> None:
    text = tmp_path / "terms.txt"
    text.write_text("Neue Bedingungen.\n", encoding="utf-8")
    done = carlink(tmp_path, "catalog", "publish-terms", "general", "de", str(text), "--title", "AGB")
    assert done.returncode == 0, done.stderr
    assert "version 2" in done.stdout
