"""The event contract: envelope, kinds, the pure tally rule, upcasters, JSON Schema."""
