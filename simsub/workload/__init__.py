"""Workload sources: the clients of a run and the mail they want to send.

Below the model and above the scenario: the model asks a workload what to play
and never draws a client or an arrival itself.  ``synthetic`` draws populations
from a scenario (today's only source); a replayed maillog trace attaches here.
"""
