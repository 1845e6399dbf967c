"""Postfix maillogs: read a server's own log into tidy tables (and fit and replay it)."""
