"""Typed resources, statuses and ARNs. Imports no web or database code."""
