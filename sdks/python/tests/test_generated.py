"""The generated code: imports cleanly with the pinned runtime, from inside the package."""

from __future__ import annotations

import subprocess
import sys

import google.protobuf
import grpc

import maxine.gen.maxine.registry.v1.registry_pb2 as pb2
import maxine.gen.maxine.registry.v1.registry_pb2_grpc as pb2_grpc


def test_generated_code_imports_with_no_warning_in_a_fresh_interpreter() -> None:
    code = (
        "import maxine, maxine.gen.maxine.registry.v1.registry_pb2_grpc as g; "
        "print(g.RegistryServiceStub.__name__)"
    )
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "RegistryServiceStub" and run.stderr == ""


def test_stubs_import_their_messages_relatively() -> None:
    source = open(pb2_grpc.__file__, encoding="utf-8").read()
    assert "from . import registry_pb2 as" in source
    assert "from maxine.registry" not in source
    assert pb2_grpc.maxine_dot_registry_dot_v1_dot_registry__pb2 is pb2


def test_the_runtime_is_the_pinned_one() -> None:
    pinned = dict(
        line.split("==")
        for line in open(_requirements(), encoding="utf-8").read().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert google.protobuf.__version__ == pinned["protobuf"]
    assert grpc.__version__ == pinned["grpcio"]
    assert pb2.DESCRIPTOR.package == "maxine.registry.v1"


def _requirements() -> str:
    from maxine_server import REPO

    return str(REPO / "sdks" / "python" / "requirements" / "runtime.txt")
