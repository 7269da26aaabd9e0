"""`opsledger demo`: the reference week of action through the real pipeline."""
