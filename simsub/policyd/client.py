"""A minimal policy client, as Postfix's smtpd talks to a policy server (tests, replays, the benchmark)."""

from __future__ import annotations

import asyncio
import socket

from .protocol import format_request, parse_answer

#: The attributes Postfix 3.7 sends with every request, with neutral values.
BASE_REQUEST = {
    "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
    "helo_name": "client.example", "queue_id": "", "sender": "user@example.org",
    "recipient": "rcpt@example.net", "recipient_count": "0", "client_address": "192.0.2.1",
    "client_name": "unknown", "reverse_client_name": "unknown", "instance": "", "sasl_method": "PLAIN",
    "sasl_username": "", "sasl_sender": "", "size": "0", "ccert_subject": "", "ccert_issuer": "",
    "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "", "encryption_protocol": "",
    "encryption_cipher": "", "encryption_keysize": "0", "etrn_domain": "", "stress": "",
    "client_port": "50000", "policy_context": "", "server_address": "127.0.0.1", "server_port": "587",
    "compatibility_level": "3.6", "mail_version": "3.7.11",
}


def postfix_request(**attributes) -> dict[str, str]:
    """A full request like Postfix's, with ``attributes`` set (values turned to text)."""
    request = dict(BASE_REQUEST)
    request.update({k: str(v) for k, v in attributes.items()})
    return request


def _connect(address: str, timeout: float) -> socket.socket:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address[len("unix:"):])
        return sock
    host, _, port = address.removeprefix("inet:").rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


class PolicyClient:
    """One persistent connection; :meth:`ask` sends a request and returns the action text."""

    def __init__(self, address: str, timeout: float = 5.0):
        self.sock = _connect(address, timeout)
        self.file = self.sock.makefile("rb")

    def ask(self, attributes: dict[str, str]) -> str:
        self.sock.sendall(format_request(attributes))
        return self.read_answer()

    def read_answer(self) -> str:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
            if line in (b"\n", b"\r\n"):
                return parse_answer(b"".join(lines))
            lines.append(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


async def ask_async(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> str:
    """Send one pre-formatted request on an asyncio connection; the action text."""
    writer.write(request)
    data = await reader.readuntil(b"\n\n")
    return parse_answer(data)
