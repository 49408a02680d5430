"""Errors at the edge of the API: a stable code and a clear message for every malformed request; never a
500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from carlink.app import MAX_BODY_BYTES
from carlink.demo import world
from carlink.identity.tokens import AUDIENCE
from tests.support.stack import TAYCAN, Stack


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with await stack.as_user(world.OWNER) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def test_a_body_that_is_not_json_is_refused_as_invalid_json(
    stack: Stack, owner: httpx.AsyncClient
) -> None:
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/commands",
        content=b'{"type": "LOCK"',
        headers={"Content-Type": "application/json"},
    )
    assert (response.status_code, error_code(response)) == (400, "invalid_json")
    assert stack.fleet[TAYCAN].executed == []


async def test_missing_fields_are_named_in_an_invalid_request_error(stack: Stack) -> None:
    response = await stack.http.post("/api/v1/accounts", json={"email": "someone@example.com"})
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert {d["field"] for d in response.json()["error"]["details"]} == {"password", "country"}


async def test_an_unknown_command_type_is_an_invalid_request(stack: Stack, owner: httpx.AsyncClient) -> None:
    response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "SELF_DESTRUCT"})
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["details"][0]["field"] == "type"


async def test_waking_is_not_a_remote_service_clients_may_send(
    stack: Stack, owner: httpx.AsyncClient
) -> None:
    response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "WAKE"})
    assert (response.status_code, error_code(response)) == (400, "unknown_command")


async def test_an_oversized_body_is_refused_before_it_is_read(stack: Stack, owner: httpx.AsyncClient) -> None:
    body = b'{"type": "LOCK", "params": {"pad": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/commands", content=body, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")


async def test_an_oversized_body_without_content_length_is_cut_off_too(
    stack: Stack, owner: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "LOCK", "params": {"pad": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/commands", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")
    assert stack.fleet[TAYCAN].executed == []


async def test_a_body_just_under_the_limit_is_read(stack: Stack, owner: httpx.AsyncClient) -> None:
    body = json.dumps({"type": "HONK_FLASH", "params": {"pad": "x" * (MAX_BODY_BYTES - 100)}}).encode()
    assert len(body) <= MAX_BODY_BYTES
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/commands", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text


async def test_no_token_means_sign_in_first(stack: Stack) -> None:
    for headers in ({}, {"Authorization": "Basic b3duZXI6cHc="}, {"Authorization": "Bearer"}):
        response = await stack.http.get("/api/v1/vehicles", headers=headers)
        assert (response.status_code, error_code(response)) == (401, "unauthorised"), headers


def _forged_token(stack: Stack, kid: str) -> str:
    """A well-formed token, signed by a key that is not ours."""
    claims = {
        "iss": stack.base_url,
        "sub": "1",
        "aud": [AUDIENCE],
        "exp": 4_000_000_000,
        "email": world.OWNER,
    }
    return jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}
    )


@pytest.mark.parametrize("kind", ["garbage", "unknown-key", "our-kid-other-key", "alg-none"])
async def test_a_token_we_did_not_sign_is_an_invalid_token(stack: Stack, kind: str) -> None:
    our_kid = stack.platform.tokens.jwks()["keys"][-1]["kid"]
    token = {
        "garbage": "not.a.jwt",
        "unknown-key": _forged_token(stack, "someone-else"),
        "our-kid-other-key": _forged_token(stack, our_kid),
        "alg-none": jwt.encode(
            {"sub": "1", "aud": [AUDIENCE], "iss": stack.base_url},
            None,
            algorithm="none",
            headers={"kid": our_kid},
        ),
    }[kind]
    response = await stack.http.get("/api/v1/vehicles", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, error_code(response)) == (401, "invalid_token")


async def test_repeated_slashes_in_a_path_count_as_one(stack: Stack, owner: httpx.AsyncClient) -> None:
    # Older community clients build /app//connect/... (reference doc, section 1).
    compat = await owner.get("/app//connect/v1/vehicles")
    assert compat.status_code == 200, compat.text
    assert [car["vin"] for car in compat.json()] == [
        car["vin"] for car in (await owner.get("/app/connect/v1/vehicles")).json()
    ]
    ours = await owner.get("/api//v1///me")
    assert ours.status_code == 200 and ours.json()["email"] == world.OWNER


NASTY: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/vehicles/NOT-A-VIN/status", {}),
    ("GET", f"/api/v1/vehicles/{'W' * 5000}/status", {}),
    ("GET", "/api/v1/vehicles/ÄÖÜ%00%FF/status", {}),
    ("GET", f"/api/v1/vehicles/{TAYCAN}/commands/{'x' * 500}", {}),
    ("GET", f"/api/v1/vehicles/{TAYCAN}/commands/nope", {"params": {"wait": "soon"}}),
    ("GET", f"/api/v1/vehicles/{TAYCAN}/commands/nope", {"params": {"wait": "-1"}}),
    ("GET", f"/api/v1/vehicles/{TAYCAN}/status", {"params": {"current": "maybe"}}),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"json": []}),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"json": None}),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"content": b"[" * 200_000, "headers": {"Content-Type": "application/json"}},
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
    ),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"data": {"type": "LOCK"}}),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"json": {"type": "LOCK", "params": []}}),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"json": {"type": "UNLOCK"}}),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"json": {"type": "UNLOCK", "spin": {"challenge": "x" * 8, "hash": "0" * 128}}},
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"json": {"type": "CHARGE_TARGET", "params": {"target_soc": "90"}}},
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"json": {"type": "CHARGE_TARGET", "params": {"target_soc": True}}},
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"json": {"type": "CLIMATE_START", "params": {"target_temperature_c": "hot"}}},
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {
            "content": b'{"type": "CLIMATE_START", "params": {"target_temperature_c": NaN}}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {
            "content": b'{"type": "CLIMATE_START", "params": {"target_temperature_c": 1e999}}',
            "headers": {"Content-Type": "application/json"},
        },
    ),
    (
        "POST",
        f"/api/v1/vehicles/{TAYCAN}/commands",
        {"json": {"type": "CLIMATE_START", "params": {"zones": {"front_left": 1}}}},
    ),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/commands", {"json": {"type": "HONK_FLASH", "params": {"mode": 5}}}),
    ("POST", f"/api/v1/vehicles/{TAYCAN}/users", {"json": {"email": "x" * 300}}),
    ("DELETE", f"/api/v1/vehicles/{TAYCAN}/users/not-a-number", {}),
    ("DELETE", f"/api/v1/vehicles/{TAYCAN}/users/99999999999999999999999", {}),
    ("DELETE", f"/api/v1/vehicles/{TAYCAN}/users/-1", {}),
    ("PUT", "/api/v1/me/pin", {"json": {"password": "p" * 300, "pin": "1234"}}),
    ("POST", "/api/v1/me/password", {"json": {"current_password": None, "new_password": 12345678}}),
    (
        "POST",
        "/api/v1/accounts",
        {"json": {"email": "a@b.cd", "password": "long-enough-1", "country": "\u00e4\u00f6"}},
    ),
    ("PATCH", "/api/v1/me", {}),
    ("POST", "/oauth/token", {"json": {"grant_type": "refresh_token"}}),
    (
        "POST",
        "/oauth/token",
        {"data": {"grant_type": "authorization_code", "client_id": "carlink-app", "code": "x"}},
    ),
    ("GET", "/authorize", {"params": {"client_id": "carlink-app", "redirect_uri": "carlink://evil"}}),
    ("GET", "/u/login/identifier", {"params": {"state": "s" * 5000}}),
    ("POST", "/u/login/password", {"data": {"state": "unknown", "username": "a", "password": "b"}}),
    ("GET", "/app/connect/v1/vehicles/NOT-A-VIN", {}),
    ("GET", "/app/connect/v1/vehicles/" + TAYCAN, {"params": {"mf": ",".join(f"K{i}" for i in range(1000))}}),
]


async def test_malformed_requests_get_a_clear_client_error_never_a_500(
    stack: Stack, owner: httpx.AsyncClient
) -> None:
    wrong = []
    for method, path, options in NASTY:
        response = await owner.request(method, path, **options)
        json_body = response.headers.get("content-type", "").startswith("application/json")
        if not 400 <= response.status_code < 500 or (json_body and "error" not in response.json()):
            wrong.append((method, path[:80], response.status_code, response.text[:200]))
    assert wrong == []
    assert stack.fleet[TAYCAN].executed == []


async def test_a_wrong_method_is_refused_with_the_methods_allowed_in_json_and_on_a_page(stack: Stack) -> None:
    answer = await stack.http.get("/signout")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    page = await stack.http.get("/signout", headers={"Accept": "text/html", "Accept-Language": "de"})
    assert page.status_code == 405 and page.headers["allow"] == "POST"
    assert 'data-code="method_not_allowed"' in page.text and '<html lang="de">' in page.text
