"""The remembered key hash sends every key where aiokafka's default partitioner would."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from services.ingest.producer import KeyPartitioner


def test_same_partition_as_the_default_for_every_key_and_partition_count() -> None:
    default, ours = DefaultPartitioner(), KeyPartitioner(max_keys=50)
    keys = [f"op-{uuid.uuid4().hex[:n]}".encode() for n in range(1, 33)] * 3 + [b"", b"x" * 300]
    for count in (1, 3, 12, 48):
        partitions = list(range(count))
        for key in keys:  # each key twice or more: from the hash, then from memory
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)


def test_memory_is_bounded() -> None:
    ours = KeyPartitioner(max_keys=10)
    for n in range(25):
        ours(f"op-{n}".encode(), [0, 1, 2], [0, 1, 2])
    assert len(ours._hashes) <= 10


def test_no_key_goes_to_an_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
