"""Credentials for libraries, agencies and KB staff.

A credential is a signed token (EdDSA / Ed25519) naming a role and an organisation. Any
service verifies it with the public keys in its keys directory, so no service reads another
one's database to authenticate a caller. Rotation: `ido keys rotate` adds a new signing key;
old public keys keep verifying the credentials they signed until they are removed.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# "service": one platform service calling another (routing fetching a data key from intake).
Role = Literal["library", "agency", "kb", "service"]
ISSUER = "ido-platform"


@dataclass(frozen=True)
class Principal:
    role: Role
    organisation: str  # library or agency code; "kb" for KB staff
    credential_id: str


class InvalidCredential(Exception):
    pass


class ExpiredCredential(InvalidCredential):
    pass


# How long a credential is valid unless its issuer says otherwise (IDO_CREDENTIAL_DAYS).
DEFAULT_VALIDITY = timedelta(days=365)


class KeyStore:
    """Ed25519 keys on disk: `<kid>.key` (private, only where credentials are issued) and
    `<kid>.pub` (public, wherever credentials are verified)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._public: dict[str, Ed25519PublicKey] = {}

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        keys = sorted(self.directory.glob("*.key"))  # kids start with a UTC timestamp
        if not keys:
            return self.rotate()
        newest = keys[-1]
        key = serialization.load_pem_private_key(newest.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return newest.stem, key

    def rotate(self) -> tuple[str, Ed25519PrivateKey]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        kid = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:8]
        key = Ed25519PrivateKey.generate()
        private = self.directory / f"{kid}.key"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private.chmod(0o600)
        (self.directory / f"{kid}.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return kid, key

    def public_key(self, kid: str) -> Ed25519PublicKey:
        # A key added by rotation is picked up on first use; a removed key stops verifying at once.
        path = self.directory / f"{Path(kid).name}.pub"
        if not path.is_file():
            self._public.pop(kid, None)
            raise InvalidCredential("unknown signing key")
        if kid not in self._public:
            key = serialization.load_pem_public_key(path.read_bytes())
            assert isinstance(key, Ed25519PublicKey)
            self._public[kid] = key
        return self._public[kid]


def issue_credential(
    store: KeyStore, role: Role, organisation: str, valid_for: timedelta = DEFAULT_VALIDITY
) -> tuple[str, str]:
    """Return (credential_id, token). The token names its signing key (`kid`) and expires."""
    kid, key = store.signing_key()
    credential_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "sub": f"{role}:{organisation}",
        "role": role,
        "org": organisation,
        "jti": credential_id,
        "iat": int(now.timestamp()),
        "exp": int((now + valid_for).timestamp()),
    }
    return credential_id, jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def verify_credential(store: KeyStore, token: str) -> Principal:
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
        claims = jwt.decode(
            token,
            store.public_key(kid),
            algorithms=["EdDSA"],
            issuer=ISSUER,
            options={"require": ["iss", "sub", "jti", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        expired = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
        raise ExpiredCredential(
            f"the credential expired on {expired:%Y-%m-%d %H:%M} UTC; ask your administrator for a new one"
        ) from exc
    except jwt.PyJWTError as exc:
        raise InvalidCredential("invalid credential") from exc
    if claims.get("role") not in ("library", "agency", "kb", "service") or not claims.get("org"):
        raise InvalidCredential("invalid credential")
    return Principal(role=claims["role"], organisation=claims["org"], credential_id=claims["jti"])
