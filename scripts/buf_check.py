"""`buf lint` over proto/ and `buf breaking` against an earlier commit's proto/.

Both sides are built as images by the same protoc and include path as `make gen` (the
googleapis protos from site-packages), so buf needs no module registry and no vendored copy;
the earlier side comes from `git archive`, which works on any clone with history (CI's
`.ci/run` clones in full). The ref is `BUF_AGAINST` (default `HEAD~1`).
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

from grpc_tools import protoc

from scripts.gen_protos import PROTO_DIR, ROOT, _include_dirs

CONFIG = PROTO_DIR / "buf.yaml"


def build_image(proto_root: pathlib.Path, out: pathlib.Path) -> None:
    """A FileDescriptorSet (a valid buf image) of every .proto under proto_root."""
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    includes = [str(proto_root), *_include_dirs()[1:]]
    code = protoc.main(
        [
            "protoc",
            *(f"-I{d}" for d in includes),
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *protos,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {proto_root}")


def export_proto(ref: str, into: pathlib.Path) -> pathlib.Path:
    """proto/ as it was at `ref`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "proto"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "proto"


def buf(*args: str) -> int:
    found = shutil.which("buf", path=str(pathlib.Path(sys.executable).parent)) or "buf"
    return subprocess.run([found, *args], cwd=ROOT, check=False).returncode


def main() -> int:
    against = os.environ.get("BUF_AGAINST", "HEAD~1")
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        build_image(PROTO_DIR, work / "current.binpb")
        build_image(export_proto(against, work / "against"), work / "against.binpb")
        # --path: lint and compare our files only, not the google/* files in the images.
        scope = ["--config", str(CONFIG), "--path", "customers"]
        code = buf("lint", str(work / "current.binpb"), *scope)
        code |= buf(
            "breaking",
            str(work / "current.binpb"),
            "--against",
            str(work / "against.binpb"),
            "--against-config",
            str(CONFIG),
            *scope,
        )
        if code == 0:
            print(f"buf lint and buf breaking (against {against}): ok")
        return code


if __name__ == "__main__":
    sys.exit(main())
