"""Topic creation at start-up: what each broker answer means for ingest."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.common import topics
from services.ingest.settings import IngestSettings


class FakeAdmin:
    """Answers CreateTopics with a chosen error code for every topic."""

    code = 0
    created: list[Any] = []

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create_topics(self, new_topics: list[Any]) -> Any:
        FakeAdmin.created = new_topics
        return SimpleNamespace(topic_errors=[(t.name, self.code, "") for t in new_topics])


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", FakeAdmin)
    return FakeAdmin


@pytest.mark.parametrize("code", [0, 36, 29, 31])  # created, exists, not allowed (ACLs)
async def test_created_existing_or_provisioned_topics_are_fine(
    admin: type[FakeAdmin], code: int
) -> None:
    admin.code = code
    settings = IngestSettings(
        env="test", topic="log-x", dlq_topic="log-x.dlq", operations_topic="ops-x",
        topic_partitions=7,
    )  # fmt: skip
    await topics.ensure_topics(settings)
    assert [(t.name, t.num_partitions) for t in admin.created] == [
        ("log-x", 7), ("log-x.dlq", 7), ("ops-x", 1),
    ]  # fmt: skip
    assert all(t.topic_configs["retention.ms"] == "-1" for t in admin.created)
    # The operation records: compacted, so the latest record of each operation stays forever.
    assert admin.created[2].topic_configs["cleanup.policy"] == "compact"


async def test_any_other_refusal_is_an_error(admin: type[FakeAdmin]) -> None:
    admin.code = 37  # INVALID_PARTITIONS
    with pytest.raises(topics.TopicError, match="error 37"):
        await topics.ensure_topics(IngestSettings(env="test"))
