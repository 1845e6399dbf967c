"""The Postfix policy delegation protocol (SMTPD_POLICY_README), bytes in and out.

A request is ``name=value`` lines ending with an empty line; the answer is
``action=...`` and an empty line.  Postfix keeps the connection open and sends
many requests on it.  This module only parses and formats; reading from the
socket (and its limits on time) is the server's job.

Rules a production server needs (Postfix itself never breaks them, a port
scanner or a misconfigured client does):

* a request longer than :data:`MAX_REQUEST` bytes ends the connection (no way
  to find the next request boundary safely);
* a request that cannot be read (a line without ``=`` or over :data:`MAX_LINE`
  bytes, more than :data:`MAX_ATTRIBUTES` lines, bytes that are not UTF-8, the
  same attribute twice, no ``request=smtpd_access_policy``) is answered
  ``DUNNO`` — Postfix then goes on with its restriction list;
* attributes the daemon does not know are ignored, as SMTPD_POLICY_README asks
  of every policy server (Postfix adds attributes in new versions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Longest request line accepted, in bytes (Postfix 3.7 sends well under 1 KB per
#: attribute; a certificate subject is the longest).
MAX_LINE = 8192
#: Most lines in one request (Postfix 3.7 sends about 35 attributes).
MAX_ATTRIBUTES = 128
#: Longest request, in bytes (what the server buffers at most per connection).
MAX_REQUEST = 65536

#: The attributes of Postfix 3.7's policy request (SMTPD_POLICY_README), for the
#: "unknown attribute" log line: anything else is ignored but noted once.
KNOWN_ATTRIBUTES = frozenset("""
request protocol_state protocol_name helo_name queue_id sender recipient recipient_count
client_address client_name reverse_client_name instance sasl_method sasl_username sasl_sender
size ccert_subject ccert_issuer ccert_fingerprint ccert_pubkey_fingerprint encryption_protocol
encryption_cipher encryption_keysize etrn_domain stress client_port policy_context
server_address server_port compatibility_level mail_version
""".split())

REQUEST_TYPE = "smtpd_access_policy"
_NAME = re.compile(r"[A-Za-z0-9_]+\Z").match  # Postfix's names: lower case and "_"


@dataclass
class ParsedRequest:
    """One request: its attributes, or why it cannot be used (``problem``)."""

    attributes: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # empty when the request is usable
    unknown: list[str] = field(default_factory=list)  # attribute names Postfix 3.7 does not send


def parse_request(lines: list[bytes]) -> ParsedRequest:
    """Parse one request's lines (each with its newline; the last is the empty line)."""
    parsed = ParsedRequest()
    if len(lines) > MAX_ATTRIBUTES + 1:
        parsed.problem = f"more than {MAX_ATTRIBUTES} lines"
        return parsed
    data = b"".join(lines)
    try:
        text = data.decode("utf-8")  # once for the whole request: a third of the time per line
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        parsed.problem = f"line {number} is not UTF-8"
        return parsed
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    attributes = parsed.attributes
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            break  # the end of the request
        if len(line) > MAX_LINE:
            parsed.problem = f"line {number} is longer than {MAX_LINE} bytes"
            return parsed
        name, sep, value = line.partition("=")
        if not sep or _NAME(name) is None:
            parsed.problem = f"line {number} is not name=value: {_show(line)}"
            return parsed
        if name in attributes:
            parsed.problem = f"attribute {name!r} appears twice"
            return parsed
        attributes[name] = value
    if not KNOWN_ATTRIBUTES.issuperset(attributes):
        parsed.unknown = [name for name in attributes if name not in KNOWN_ATTRIBUTES]
    if attributes.get("request") != REQUEST_TYPE:
        got = attributes.get("request")
        parsed.problem = (f"request={got!r} is not {REQUEST_TYPE}" if got is not None
                          else f"no request={REQUEST_TYPE} attribute")
    return parsed


def format_request(attributes: dict[str, str]) -> bytes:
    """A request as Postfix writes it (for clients: tests, the benchmark, the replay)."""
    return "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"


def format_answer(action: str) -> bytes:
    """``action=...`` and the empty line; line breaks in the text would end the answer early."""
    action = " ".join(action.split()) or "DUNNO"
    return f"action={action}\n\n".encode()


def parse_answer(data: bytes) -> str:
    """The action of one answer block (for clients)."""
    text = data.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith("action="):
            return line[len("action="):]
    raise ValueError(f"no action= line in the answer {_show(text)}")


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
