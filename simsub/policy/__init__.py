"""Postfix-like policy: restriction lists, pcre access maps and policy services."""
