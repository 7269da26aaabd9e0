"""Code shared by the services: settings, tokens, logging, database, Kafka wire format."""
