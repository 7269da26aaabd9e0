"""The local stack: a real Kafka broker and a real PostgreSQL, started without Docker."""
