"""Lint the Dockerfile (no Docker engine here to build it): multi-stage, non-root, no secrets."""

from __future__ import annotations

import re

from tests.deploy.k8s import OBSERVABILITY_WORKLOADS, REPO, find, rendered

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_is_multi_stage_and_ships_only_the_runtime_stage() -> None:
    froms = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    assert any("--from=" in args for keyword, args in instructions() if keyword == "COPY")


def test_final_user_is_numeric_and_not_root() -> None:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    users = [args for keyword, args in steps[last_from:] if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    user = users[-1].split(":")[0]
    # Numeric so the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert user.isdigit() and int(user) != 0
    for deployment in find(rendered("prod"), "Deployment"):
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


def test_no_secrets_in_the_image() -> None:
    secret_words = re.compile(r"(password|passwd|secret|token|api[_-]?key|private[_-]?key)", re.I)
    for keyword, args in instructions():
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not secret_words.search(args), f"{keyword} {args} looks like a secret"
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".crossdock", ".env"):
        assert path in ignored, f".dockerignore must exclude {path}"


def test_every_service_command_exists_in_the_image() -> None:
    copied = {
        args.split()[-2].split("/")[-1]
        for keyword, args in instructions()
        if keyword == "COPY" and "--from=" in args
    }
    for deployment in find(rendered("prod"), "Deployment"):
        if deployment["metadata"]["name"] in OBSERVABILITY_WORKLOADS:
            continue  # their own pinned images
        module = deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        assert module.split(".")[0] in copied, f"{module} is not copied into the image"
