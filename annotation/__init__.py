"""Annotation workflow over Label Studio (groups, cross-checks, agreement, aggregation). Arrives with issue 3."""
