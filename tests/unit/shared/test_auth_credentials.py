"""Credentials: issue, verify, tampering, key removal and rotation (keys in tmp_path)."""

import base64
import json

import jwt
import pytest

from shared.auth import InvalidCredential, KeyStore, issue_credential, verify_credential


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
