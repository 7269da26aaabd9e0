"""The `opsledger` command line: a thin layer over the services' own functions."""
