"""Regenerate the Python contracts package (gen/python) from proto/.

Why a script and not `buf generate`: the Python and gRPC generators are built into grpcio-tools'
bundled protoc, which buf cannot call without a protoc binary on PATH. buf still owns lint, format
and breaking checks; this script owns code generation, so `make proto` needs only the venv.

Usage: python tools/gen_proto.py [--out DIR]   (default: gen/python)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
THIRD_PARTY = REPO / "third_party" / "proto"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
DEFAULT_OUT = REPO / "gen" / "python"
# Generated trees we own inside the output dir; pyproject.toml and README stay untouched.
GENERATED_ROOTS = ("crossdock", "buf")


def _plugin(name: str) -> str:
    """Path of a protoc plugin installed next to this interpreter (mypy-protobuf)."""
    candidate = Path(sys.executable).parent / name
    found = candidate if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return str(found)


def _protoc(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")


def generate(out: Path) -> None:
    """Write messages, gRPC stubs and type stubs for every crossdock proto into out."""
    for root in GENERATED_ROOTS:
        shutil.rmtree(out / root, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{PROTO_ROOT}", f"-I{THIRD_PARTY}", f"-I{WELL_KNOWN}"]
    mypy = [
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
    ]
    ours = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    _protoc([*includes, *mypy, f"--python_out={out}", f"--mypy_out={out}", *ours])
    # Only files that declare a service get gRPC stubs; the others would be empty modules.
    with_services = [f for f in ours if "\nservice " in (PROTO_ROOT / f).read_text()]
    _protoc(
        [*includes, *mypy, f"--grpc_python_out={out}", f"--mypy_grpc_out={out}", *with_services]
    )
    # buf.validate has no google.protobuf-style Python module on PyPI (protovalidate 2 ships its
    # own runtime's code), yet our *_pb2 modules import it, so the contracts package carries it.
    _protoc(
        [
            *includes,
            *mypy,
            f"--python_out={out}",
            f"--mypy_out={out}",
            "buf/validate/validate.proto",
        ]
    )
    for pkg_root in GENERATED_ROOTS:
        (out / pkg_root / "py.typed").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temp dir and fail if it differs from the output directory",
    )
    args = parser.parse_args()
    if not args.check:
        generate(args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = _diff(fresh, args.out)
    if stale:
        listing = "\n  ".join(stale)
        raise SystemExit(f"generated code is stale; run `make proto`. Differences:\n  {listing}")
    print("generated code is up to date")


def _diff(fresh: Path, current: Path) -> list[str]:
    """Relative paths that are missing, extra or different between two generated trees."""

    def files(base: Path) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for root in GENERATED_ROOTS:
            for path in (base / root).rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    found[str(path.relative_to(base))] = path.read_bytes()
        return found

    want, have = files(fresh), files(current)
    return sorted(
        [f"missing {p}" for p in want.keys() - have.keys()]
        + [f"extra {p}" for p in have.keys() - want.keys()]
        + [f"changed {p}" for p in want.keys() & have.keys() if want[p] != have[p]]
    )


if __name__ == "__main__":
    main()
