"""`opsledger import`: events kept elsewhere (JSONL, spreadsheets saved as CSV) into the ledger."""
