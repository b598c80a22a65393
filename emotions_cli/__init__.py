"""The `emotions` command line: the top floor over the libraries `emotions_data`, `annotation` and `baselines`.

Each command parses its options, calls one library function and prints what it returns; library code never
imports this package (an import-linter contract, checked by the test suite). The demo's orchestration, which
strings every stage together, lives here too.
"""
