"""Generates the moe.v1 gRPC code into the package at build time.

The .proto files are not copied into this directory: they are read from the
repository's protos/ (../../protos), so a build needs the whole checkout
(`pip install sdk/python` builds in place). The generated modules import each
other as `moe.v1.*`; they are rewritten to import from moe_client._proto, so
that the package owns no top-level `moe` name.
"""

import importlib.metadata
import pathlib
import re
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "protos"
# The public API and what it imports; the cluster's internal protocols
# (router, expert) are not part of the client.
PROTOS = ["moe/v1/finish_reason.proto", "moe/v1/inference.proto"]


def generate(out_dir: pathlib.Path) -> None:
    from grpc_tools import protoc  # a build requirement (pyproject.toml)

    missing = [p for p in PROTOS if not (PROTO_ROOT / p).is_file()]
    if missing:
        raise SystemExit(
            f"moe-client: {', '.join(missing)} not found under {PROTO_ROOT}; "
            "build the package from a moe-serve checkout (pip install sdk/python)")
    import grpc_tools

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
                f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}"] + [str(PROTO_ROOT / p) for p in PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("moe-client: grpc_tools.protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "__init__.py").write_text(
            '"""Generated from protos/moe/v1 at build time."""\n')
        for path in sorted((pathlib.Path(tmp) / "moe" / "v1").iterdir()):
            text = re.sub(r"^from moe\.v1 import ", "from . import ",
                          path.read_text(), flags=re.MULTILINE)
            (out_dir / path.name).write_text(text)


class BuildPyWithProtos(build_py):
    def run(self):
        super().run()
        generate(pathlib.Path(self.build_lib) / "moe_client" / "_proto")


def at_least(package: str) -> str:
    return f"{package}>={importlib.metadata.version(package)}"


setup(
    cmdclass={"build_py": BuildPyWithProtos},
    install_requires=[at_least("grpcio"), at_least("protobuf")],
)
