"""opsledger services: ingest, aggregator, query, and what they share."""
