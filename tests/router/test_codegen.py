"""The committed generated modules match what the proto produces today."""

from __future__ import annotations

from pathlib import Path

from homeport.router import codegen


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = codegen.generate(tmp_path)
    assert [p.name for p in fresh] == [
        "scheduler_pb2.py",
        "scheduler_pb2.pyi",
        "scheduler_pb2_grpc.py",
    ]
    stale = [p.name for p in fresh if p.read_text() != (codegen.DEFAULT_OUT / p.name).read_text()]
    assert not stale, f"{stale} differ from the proto: run `python -m router.codegen`"


def test_generated_modules_import_as_a_package() -> None:
    from homeport.router.proto_gen import scheduler_pb2, scheduler_pb2_grpc

    assert scheduler_pb2.DESCRIPTOR.package == "homeport.v1"
    assert (
        scheduler_pb2_grpc.SchedulerStub.__module__
        == "homeport.router.proto_gen.scheduler_pb2_grpc"
    )
