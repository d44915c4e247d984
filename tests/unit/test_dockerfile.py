"""The image's Dockerfile keeps its promises without a Docker engine to build it here (hadolint,
`make lint-docker`, checks the general rules): a builder stage installs the hash-checked runtime
lock and the project without resolving anything; the final stage is the slim Python image with
that virtualenv and the code only, no compilers, running as the non-root user."""

import re

from shared.settings import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "deploy" / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m[0].upper(), m[1].strip()) for m in re.findall(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.MULTILINE)]


INSTRUCTIONS = instructions(DOCKERFILE)


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in INSTRUCTIONS:
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def global_args() -> dict[str, str]:
    args = {}
    for name, value in INSTRUCTIONS:
        if name == "FROM":
            break
        if name == "ARG" and "=" in value:
            key, default = value.split("=", 1)
            args[key] = default
    return args


def image(stage: list[tuple[str, str]]) -> str:
    ref = stage[0][1].split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: global_args()[m[1]], ref)


def run_lines(stage: list[tuple[str, str]]) -> str:
    return "\n".join(value for name, value in stage if name == "RUN")


def test_two_stages_a_builder_and_the_slim_python_image():
    builder, final = stages()
    assert re.search(r"\bAS builder$", builder[0][1], re.IGNORECASE)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image(final))
    assert image(builder) == image(final), "the virtualenv's interpreter must be the same in both"


def test_the_builder_installs_the_hashed_runtime_lock_then_the_project_without_dependencies():
    builder, _ = stages()
    runs = run_lines(builder)
    assert re.search(r"pip .*install .*--require-hashes .*-r requirements/runtime\.txt", runs)
    assert re.search(r"pip .*install .*--no-deps \.", runs)
    assert ("COPY", "requirements/runtime.txt requirements/runtime.txt") in builder
    # Nothing installed from an unpinned name: every pip install reads the lock or is --no-deps.
    for command in re.findall(r"pip [^&\n]*install[^&\n]*", runs):
        assert "--require-hashes" in command or "--no-deps" in command, command


def test_the_final_stage_copies_the_venv_and_code_and_builds_nothing():
    _, final = stages()
    copies = [value for name, value in final if name == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert all(
        src.startswith("--from=builder") or src.split()[0] in {"pyproject.toml", "shared/", "services/"}
        for src in copies
    )
    runs = run_lines(final)
    for tool in ("pip install", "apt-get", "gcc", "build-essential", "python3-dev", "make "):
        assert tool not in runs, tool
    env = " ".join(value for name, value in final if name == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env
    for kept in ("PYTHONUNBUFFERED=1", "IDO_CREDENTIAL_KEYS_DIR=/var/lib/ido/credentials", "PGPASSFILE="):
        assert kept in env


def test_the_final_stage_runs_as_the_non_root_user_that_owns_the_volumes():
    _, final = stages()
    users = [value for name, value in final if name == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    uid = users[-1].split(":")[0]
    runs = run_lines(final)
    assert f"--uid {uid}" in runs
    assert re.search(r"install -d -o ido -g ido -m 0700 /var/lib/ido/credentials /var/lib/ido/secrets", runs)
    assert [name for name, _ in final].index("USER") > max(
        i for i, (name, _) in enumerate(final) if name in {"RUN", "COPY"}
    )
