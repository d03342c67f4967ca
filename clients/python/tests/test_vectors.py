"""Golden vectors (tests/vectors): the five steps of
proto/switchboard/testing/v1/vectors.proto for every vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from chat.v1 import chat_pb2
from switchboard.testing.v1 import vectors_pb2
from switchboard.v1 import envelope_pb2

from conftest import REPO

VECTORS = REPO / "tests" / "vectors"

# The message types vectors may name, resolved by full name.
REGISTRY: dict[str, type[ProtoMessage]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        envelope_pb2.ClientFrame,
        envelope_pb2.ServerFrame,
        chat_pb2.ChatMessage,
        chat_pb2.TypingEvent,
    )
}


def load_manifest() -> list[vectors_pb2.Vector]:
    manifest = vectors_pb2.VectorSet()
    json_format.Parse((VECTORS / "manifest.json").read_text(encoding="utf-8"), manifest)
    return list(manifest.vectors)


def vector_params() -> list[Any]:
    try:
        vectors = load_manifest()
    except FileNotFoundError:
        # No manifest is a failure, not a skip.
        return [pytest.param(None, id="manifest-missing")]
    return [pytest.param(v, id=v.name) for v in vectors]


def test_manifest_is_not_empty() -> None:
    assert load_manifest(), "tests/vectors/manifest.json lists no vectors"


@pytest.mark.parametrize("vector", vector_params())
def test_vector(vector: vectors_pb2.Vector | None) -> None:
    assert vector is not None, f"{VECTORS / 'manifest.json'} is missing"
    cls = REGISTRY.get(vector.message_type)
    assert cls is not None, f"unknown message type {vector.message_type}"
    binary = (VECTORS / f"{vector.name}.bin").read_bytes()
    expected_json = json.loads((VECTORS / f"{vector.name}.json").read_text(encoding="utf-8"))
    canonical_path = VECTORS / f"{vector.name}.canonical.bin"
    assert canonical_path.exists() == vector.has_unknown_fields, (
        "a .canonical.bin exists exactly when has_unknown_fields is set"
    )
    canonical = canonical_path.read_bytes() if vector.has_unknown_fields else binary

    # 1. Decode the binary.
    decoded = cls.FromString(binary)

    # 2. Print it as proto3 JSON: equal to the .json file as a JSON value.
    printed = json_format.MessageToDict(decoded)
    assert printed == expected_json

    # 3. Parse the JSON: equal to the decoded message. Unknown fields exist
    #    only in the binary, so compare against the decoded message without
    #    them.
    parsed = json_format.ParseDict(expected_json, cls())
    known_only = cls()
    known_only.CopyFrom(decoded)
    known_only.DiscardUnknownFields()
    assert parsed == known_only

    # 4. Re-encode the decoded message: Python keeps unknown fields, so the
    #    bytes must be the original ones.
    assert decoded.SerializeToString() == binary

    # 5. Encode the message parsed from JSON: the canonical bytes.
    assert parsed.SerializeToString() == canonical


def test_vector_files_are_all_listed() -> None:
    """Every vector file belongs to a manifest entry (no forgotten vector)."""
    names = {v.name for v in load_manifest()}
    for path in Path(VECTORS).iterdir():
        if path.name == "manifest.json" or path.suffix not in (".bin", ".json"):
            continue
        stem = path.name.split(".")[0]
        assert stem in names, f"{path.name} is not in the manifest"
