"""Elaboration, synthesis flows, reports and the CLI. Arrives with issues 3 and 4."""
