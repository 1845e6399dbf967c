"""``simsub policyd``: the model's policy services as a live Postfix policy server.

The daemon runs the very service objects the model builds from a scenario's
policy (``policy.services``), driven by the wall clock instead of the model's:
one implementation of each limiter.  Modules: :mod:`.protocol` (the
SMTPD_POLICY_README wire format), :mod:`.adapter` (a Postfix request as the
model's ``Request``), :mod:`.decide` (request -> services -> access(5) action),
:mod:`.state` (counters on disk), :mod:`.metrics` (Prometheus), :mod:`.logfmt`
(key=value log lines), :mod:`.server` (asyncio server, signals), :mod:`.thread`
(a server in a thread), :mod:`.commands` (the command line), :mod:`.deploy`
(what export-postfix writes for it); :mod:`.client` and :mod:`.peer` (postfwd
beside it) serve the tests and the benchmark.
"""
