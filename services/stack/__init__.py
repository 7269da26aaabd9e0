"""The local stack: a real Kafka broker and a real PostgreSQL, started without Docker."""

from services.stack.manager import (
    PartStatus,
    StackInfo,
    down,
    ensure_up,
    external_database,
    external_kafka,
    kill_kafka,
    kill_postgres,
    pid_of,
    settings,
    start_kafka,
    start_part,
    start_postgres,
    status,
    stop_kafka,
    stop_part,
    stop_postgres,
)
from services.stack.procs import StackError

__all__ = [
    "PartStatus",
    "StackError",
    "StackInfo",
    "down",
    "ensure_up",
    "external_database",
    "external_kafka",
    "kill_kafka",
    "kill_postgres",
    "pid_of",
    "settings",
    "start_kafka",
    "start_part",
    "start_postgres",
    "status",
    "stop_kafka",
    "stop_part",
    "stop_postgres",
]
