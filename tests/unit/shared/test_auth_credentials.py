"""Credentials: issue, verify, tampering, key removal and rotation (keys in tmp_path)."""

import base64
import json
from datetime import timedelta

import jwt
import pytest

from shared.auth import (
    ExpiredCredential,
    InvalidCredential,
    KeyStore,
    Principal,
    issue_credential,
    verify_credential,
)


@pytest.fixture
def store(tmp_path):
    return KeyStore(tmp_path / "keys")


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(("role", "organisation"), [("library", "rotterdam"), ("agency", "duo"), ("kb", "kb")])
def test_issue_then_verify(store, role, organisation):
    credential_id, token = issue_credential(store, role, organisation)
    principal = verify_credential(store, token)
    assert (principal.role, principal.organisation, principal.credential_id) == (role, organisation, credential_id)


def test_verifying_store_needs_only_public_keys(store, tmp_path):
    _, token = issue_credential(store, "library", "venlo")
    for private in (tmp_path / "keys").glob("*.key"):
        private.unlink()
    assert verify_credential(KeyStore(tmp_path / "keys"), token).organisation == "venlo"


def test_tampered_token_is_refused(store):
    _, token = issue_credential(store, "library", "venlo")
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = ".".join([header, b64({**claims, "role": "kb", "org": "kb"}), signature])
    with pytest.raises(InvalidCredential):
        verify_credential(store, forged)


def test_garbage_token_is_refused(store):
    issue_credential(store, "library", "venlo")
    with pytest.raises(InvalidCredential):
        verify_credential(store, "not-a-token")


def test_token_of_removed_public_key_is_refused(store, tmp_path):
    _, token = issue_credential(store, "agency", "uwv")
    (tmp_path / "keys" / f"{kid_of(token)}.pub").unlink()
    with pytest.raises(InvalidCredential):
        verify_credential(KeyStore(tmp_path / "keys"), token)


def test_removed_public_key_stops_verifying_in_a_running_store(store, tmp_path):
    _, token = issue_credential(store, "agency", "uwv")
    verify_credential(store, token)  # key now loaded
    (tmp_path / "keys" / f"{kid_of(token)}.pub").unlink()
    with pytest.raises(InvalidCredential):
        verify_credential(store, token)


def test_rotation_keeps_old_credentials_valid_and_signs_with_new_key(store, tmp_path):
    _, old_token = issue_credential(store, "library", "katwijk")
    old_kid = kid_of(old_token)
    new_kid, _ = store.rotate()
    assert new_kid != old_kid
    assert {p.stem for p in (tmp_path / "keys").glob("*.pub")} == {old_kid, new_kid}

    verifier = KeyStore(tmp_path / "keys")
    assert verify_credential(verifier, old_token).organisation == "katwijk"
    _, new_token = issue_credential(store, "library", "katwijk")
    assert kid_of(new_token) == new_kid
    assert verify_credential(verifier, new_token).organisation == "katwijk"


def test_a_credential_names_its_key_and_expires_after_its_validity(store):
    """Issue 11.4: credentials age; the default is a year."""
    _, token = issue_credential(store, "library", "venlo")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert kid_of(token) and claims["exp"] - claims["iat"] == 365 * 24 * 3600
    _, short = issue_credential(store, "kb", "kb", valid_for=timedelta(minutes=5))
    claims = jwt.decode(short, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300


def test_an_expired_credential_is_refused_saying_when_it_expired(store):
    _, token = issue_credential(store, "agency", "uwv", valid_for=timedelta(seconds=-60))
    with pytest.raises(ExpiredCredential, match=r"expired on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"):
        verify_credential(store, token)


def test_a_credential_without_an_expiry_is_refused(store):
    kid, key = store.signing_key()
    claims = {"iss": "ido-platform", "sub": "kb:kb", "role": "kb", "org": "kb", "jti": "x", "iat": 1}
    with pytest.raises(InvalidCredential):
        verify_credential(store, jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid}))


async def test_the_api_answers_an_expired_credential_with_401_and_the_reason(store):
    from typing import Annotated

    from fastapi import Depends, FastAPI
    from httpx import ASGITransport, AsyncClient

    from shared.http import credential_dependency, install_conventions

    app = FastAPI()
    install_conventions(app, "test", 1024)
    dependency = credential_dependency(store)

    @app.get("/who")
    async def who(principal: Annotated[Principal, Depends(dependency)]) -> str:
        return principal.organisation

    _, expired = issue_credential(store, "agency", "uwv", valid_for=timedelta(seconds=-1))
    _, valid = issue_credential(store, "agency", "uwv")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/who", headers={"Authorization": f"Bearer {expired}"})
        assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["title"] == "Credential expired" and "expired on" in answer.json()["detail"]
        assert (await client.get("/who", headers={"Authorization": f"Bearer {valid}"})).json() == "uwv"
