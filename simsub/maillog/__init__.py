"""Postfix maillogs: read them into tables, fit scenarios to them, write them from simulated runs."""
