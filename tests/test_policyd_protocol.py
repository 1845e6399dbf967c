"""simsub policyd: the wire format, the request adapter and the log line format."""

from __future__ import annotations

import ipaddress

import pytest

from simsub.policyd.adapter import MessageMemo, Origins, PolicyRequest
from simsub.policyd.client import postfix_request
from simsub.policyd.logfmt import kv
from simsub.policyd.protocol import (KNOWN_ATTRIBUTES, format_answer, format_request, parse_answer,
                                     parse_request)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_a_postfix_request_round_trips_with_every_attribute_known():
    request = postfix_request(sasl_username="alice", client_address="203.0.113.5", instance="1a2b.3c.4d.0",
                              sender="a=b@example.org")  # a value holding '=' keeps it
    parsed = parse_request(_lines(format_request(request)))
    assert parsed.problem == ""
    assert parsed.attributes == request
    assert parsed.unknown == []
    assert set(request) <= KNOWN_ATTRIBUTES


def test_answers_round_trip_and_line_breaks_in_the_text_cannot_end_the_answer_early():
    assert format_answer("DEFER 4.7.1 over limit") == b"action=DEFER 4.7.1 over limit\n\n"
    assert parse_answer(format_answer("REJECT 5.7.1 x")) == "REJECT 5.7.1 x"
    assert format_answer("DEFER a\n\nb") == b"action=DEFER a b\n\n"
    assert format_answer("") == b"action=DUNNO\n\n"


def test_crlf_lines_are_read_like_lf_lines():
    parsed = parse_request([b"request=smtpd_access_policy\r\n", b"sasl_username=bob\r\n", b"\r\n"])
    assert parsed.problem == "" and parsed.attributes["sasl_username"] == "bob"


@pytest.mark.parametrize("lines, problem", [
    ([b"sasl_username=bob\n", b"\n"], "no request=smtpd_access_policy"),
    ([b"request=junk\n", b"\n"], "request='junk' is not smtpd_access_policy"),
    ([b"request=smtpd_access_policy\n", b"hello\n", b"\n"], "line 2 is not name=value"),
    ([b"request=smtpd_access_policy\n", b"=x\n", b"\n"], "line 2 is not name=value"),
    ([b"request=smtpd_access_policy\n", b"\xff\xfe=\x00\n", b"\n"], "line 2 is not UTF-8"),
    ([b"request=smtpd_access_policy\n", b"a b=c\n", b"\n"], "line 2 is not name=value"),
    ([b"request=smtpd_access_policy\n", b"sender=a\n", b"sender=b\n", b"\n"], "'sender' appears twice"),
    ([b"\n"], "no request=smtpd_access_policy"),
])
def test_requests_that_cannot_be_read_say_why(lines, problem):
    assert problem in parse_request(lines).problem


def test_an_unknown_attribute_is_kept_aside_not_an_error():
    parsed = parse_request(_lines(format_request(postfix_request(x_new_in_postfix_4="1"))))
    assert parsed.problem == "" and parsed.unknown == ["x_new_in_postfix_4"]


@pytest.mark.parametrize("state, stage", [("RCPT", "rcpt"), ("DATA", "data"), ("END-OF-MESSAGE", "end_of_data"),
                                          ("EHLO", "helo"), ("HELO", "helo"), ("MAIL", "mail"),
                                          ("CONNECT", "connect"), ("VRFY", "vrfy")])
def test_protocol_state_maps_to_the_models_stage(state, stage):
    request = PolicyRequest(postfix_request(protocol_state=state), Origins([]), MessageMemo())
    assert request.stage == stage


def test_the_adapter_gives_the_services_what_the_model_gives_them():
    origins = Origins([("own", ipaddress.ip_network("198.51.100.0/22"), True)])
    memo = MessageMemo()
    first = PolicyRequest(postfix_request(client_address="198.51.100.9", client_name="p1.example.jp",
                                          sasl_username="alice", instance="abc", recipient_count="3"), origins, memo)
    assert (first.client.hostname, first.client.address, first.client.origin, first.client.mynetworks) == \
        ("p1.example.jp", "198.51.100.9", "own", True)
    assert first.sasl_username == "alice" and first.recipient_count == 3
    again = PolicyRequest(postfix_request(instance="abc"), origins, memo)
    assert again.message_id == first.message_id  # the same message
    other = PolicyRequest(postfix_request(instance="abd"), origins, memo)
    assert other.message_id != first.message_id
    # Outside every origin: the /24 (IPv4) or /64 (IPv6), what "distinct networks" count.
    assert PolicyRequest(postfix_request(client_address="203.0.113.77"), origins, memo).client.origin == "203.0.113.0/24"
    assert PolicyRequest(postfix_request(client_address="2001:db8::5"), origins, memo).client.origin == "2001:db8::/64"
    assert PolicyRequest(postfix_request(recipient_count="junk"), origins, memo).recipient_count == 0


def test_without_an_instance_every_request_is_its_own_message_and_the_memo_is_bounded():
    memo = MessageMemo(capacity=2)
    assert memo.get("")[0] != memo.get("")[0]
    a = memo.get("a")[0]
    b = memo.get("b")[0]
    assert memo.get("a")[0] == a  # recent: remembered (and now the most recent)
    memo.get("c")  # evicts b, the least recently used
    assert len(memo) == 2 and memo.get("b")[0] != b and memo.get("a")[0] != a  # b came back, evicting a
    decisions = memo.get("a")[1]
    for i in range(10):
        decisions[("s", i)] = True
    assert len(decisions) == 4 * 2 and ("s", 9) in decisions and ("s", 0) not in decisions


def test_log_values_with_spaces_or_quotes_are_quoted():
    assert kv(event="decision", action="DEFER 4.7.1 over", user='a"b', n=3) == \
        'event=decision action="DEFER 4.7.1 over" user="a\\"b" n=3'
    assert kv(empty="") == 'empty=""'
    assert kv(junk="a\nb") == 'junk="a\\nb"'
