"""Generates gen/ from proto/: Python stubs, type stubs, Envoy's descriptor set and the
OpenAPI document built from it.

One entry point so `make gen` and CI's drift check run exactly the same command.
"""

from __future__ import annotations

import pathlib
import shutil
import sys
from importlib import resources

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GEN_DIR = ROOT / "gen"
DESCRIPTOR = GEN_DIR / "customers.pb"


def _include_dirs() -> list[str]:
    # google/api/*.proto and google/rpc/*.proto come with googleapis-common-protos,
    # google/protobuf/*.proto with grpcio-tools.
    site = pathlib.Path(resources.files("google.api").__fspath__()).parent.parent  # type: ignore[attr-defined]
    well_known = pathlib.Path(resources.files("grpc_tools").__fspath__()) / "_proto"  # type: ignore[attr-defined]
    return [str(PROTO_DIR), str(site), str(well_known)]


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    out = GEN_DIR / "customers"
    if out.exists():
        shutil.rmtree(out)
    GEN_DIR.mkdir(exist_ok=True)
    includes = [f"-I{d}" for d in _include_dirs()]
    code = protoc.main(
        [
            "protoc",
            *includes,
            f"--python_out={GEN_DIR}",
            f"--pyi_out={GEN_DIR}",
            f"--grpc_python_out={GEN_DIR}",
            *protos,
        ]
    )
    if code != 0:
        return int(code)
    # error_details.proto is in the set so Envoy keeps ErrorInfo in REST error bodies;
    # status.proto so the OpenAPI document can describe the error body from it too.
    code = protoc.main(
        [
            "protoc",
            *includes,
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR}",
            "google/rpc/error_details.proto",
            "google/rpc/status.proto",
            *protos,
        ]
    )
    if code != 0:
        return int(code)
    for package in (out, out / "v1"):
        (package / "__init__.py").touch()
    # The REST contract, from the descriptor set just written (imported late: it reads the
    # generated stubs).
    from scripts.openapi import write

    write(DESCRIPTOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
