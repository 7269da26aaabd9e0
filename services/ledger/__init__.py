"""The ledger core: records from the log into ledger rows, below every service that writes them.

`records` decodes and validates a record, `plan` asks the fold rule (`schemas.tally`) what each
event does and turns the answers into rows, `writer` writes a batch in one transaction (SQL in
`sql`), `schema` holds the schema-name check and the swap lock, `shadow` creates, swaps and
drops a rebuild's shadow schema. The aggregator (faust) and the audit rebuild both stand on it.
"""
