"""One module per family of kinds: warrants, arrests, seizures, outreach, corrections."""
