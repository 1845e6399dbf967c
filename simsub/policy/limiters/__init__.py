"""Rate-limit counters of the field tools (Exim, policyd v2, Rspamd, postfwd) on one interface.

:mod:`.base` defines the interface; :mod:`simsub.policy.ratelimit` adds the
fixed and sliding windows and the token bucket, and names all of them in
``ALGORITHMS``.  docs/limiters.md compares them.
"""
