"""The parser's shortcuts give what the plain way gives: the CSV writer's bytes, the delivery and client
regexes' fields, on the fixtures' lines and on those lines mutated at random (commas, quotes, brackets,
``>,``, a second ``, status=``, ``orig_to=``, other digits...)."""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from pathlib import Path

import pytest

from simsub.maillog import events, parse
from simsub.maillog.tables import SCHEMA, CsvSink, flat_rows, laid_out_row

FIXTURES = Path(__file__).parent / "fixtures"
#: Pieces a mutation inserts: those that change what the fast paths or CSV quoting must decide (no line
#: break: a log line's text has none, the file is read in lines).
PIECES = (",", '"', ">,", ", status=sent", ", status=", "[", "]", "[192.0.2.1]", " orig_to=<o@example.jp>,",
          " conn_use=2,", "\u0661\u0662", "1.2.3", " ", ">", "<", ": ", "=", "/", "(x)", "\u00e9", ", delays=1/2/3/4",
          ", dsn=5.0.0", "status=weird", "0", "-1", "relay=none, delay=1")


def fixture_messages() -> list[str]:
    """The text after ``program[pid]: `` of every line of the fixtures."""
    texts = []
    for path in sorted((FIXTURES / "maillog").iterdir()) + sorted((FIXTURES / "maillog-real").glob("*.log")):
        if path.suffix == ".md":
            continue
        data = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text(errors="replace")
        for line in data.splitlines():
            _, sep, text = line.partition("]: ")
            if sep:
                texts.append(text)
    return texts


def mutated(texts: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            if rng.random() < 0.7:
                text = text[:at] + rng.choice(PIECES) + text[at:]
            else:
                text = text[:at] + text[at + rng.randint(1, 6):]
        out.append(text)
    return out


def same(a, b) -> bool:
    """Equal tuples, NaN equal to NaN."""
    return a == b or (a is not None and b is not None and len(a) == len(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b)))


def regex_delivery(text: str):
    """The reference: the regex alone, exceptions as their type."""
    try:
        return events._delivery_regex(text)
    except ValueError as exc:
        return type(exc)


def fast_delivery(text: str):
    try:
        return events.delivery(text)
    except ValueError as exc:
        return type(exc)


def regex_client(text: str) -> tuple[str, str]:
    m = events._CLIENT.match(text)
    return (m[1], m[2]) if m else ("", "")


def test_delivery_fields_are_the_regexs_on_fixture_and_mutated_lines():
    texts = fixture_messages()
    deliveries = [t.partition(": ")[2] for t in texts if ": to=<" in t]
    assert len(deliveries) > 50  # the fixtures have delivery lines to mutate
    cases = deliveries + mutated(deliveries, 20_000, seed=1)
    differ = [t for t in cases if not same(fast_delivery(t), regex_delivery(t))]
    assert not differ, differ[:3]
    # the shortcut was taken (remembered middles), and the mutations reached both outcomes
    assert events._middles
    assert sum(regex_delivery(t) is None for t in cases) > 100
    assert sum(isinstance(regex_delivery(t), tuple) for t in cases) > 1000


def same_parts(a, b) -> bool:
    """Equal (to, middle, status, detail) of delivery_parts: the middles' values (NaN equal to NaN) and text."""
    return a == b or (a is not None and b is not None and a[0] == b[0] and same(a[1].values, b[1].values)
                      and a[1].text == b[1].text and a[2:] == b[2:])


def test_delivery_parts_carry_the_text_of_their_middle():
    """The recipients row's middle text, made by the parser (once per distinct middle, or per line on the
    regex's path), is str() of each of its fields joined by commas, and str() of the run; the buffers'
    layout gives the columns back in order."""
    texts = [t.partition(": ")[2] for t in fixture_messages() if ": to=<" in t]
    parts = []
    for text in texts + mutated(texts, 5_000, seed=8):
        try:
            d = events.delivery_parts(text)
        except ValueError:
            continue
        # read in place after a queue id, as the parser reads it: the same fields
        assert same_parts(events.delivery_parts(f"4Lx2Yk0Jv8z3hC1: {text}", 17), d), text
        if d is not None:
            parts.append(d)
            assert d[1].text == ",".join(str(v) for v in d[1].values) == str(d[1]) == "%s" % (d[1],), d
    assert len(parts) > 1000
    # orig_to=, no delays=
    assert any(d[1].values[0] for d in parts) and any(d[1].values[3] != d[1].values[3] for d in parts)
    for to, middle, status, detail in parts[:500]:
        flat = ("Q1", 5, to, *middle.values, status, detail)
        row = laid_out_row("recipients", flat)
        assert row[:3] + row[4:] == ("Q1", 5, to, status, detail) and row[3].text == middle.text
        assert flat_rows("recipients", [("Q1", 5, to, middle, status, detail)]) == [flat]
        assert same(flat_rows("recipients", [row])[0], flat)


def test_disconnect_runs_carry_the_text_of_their_counts():
    """A session's command counts as the parser buffers them: the counts and str() of each joined by commas."""
    texts = [t for t in fixture_messages() if t.startswith("disconnect from ")]
    cases = [t[16:].partition(" ")[2] for t in texts + mutated(texts, 3_000, seed=9)]
    runs = [events.disconnect_run(text) for text in cases]
    assert sum(run is not None for run in runs) > 100 and None in runs
    for text, run in zip(cases, runs):
        assert events.disconnect_counts(text) == (None if run is None else run.values)
        if run is not None:
            assert run.text == ",".join(str(v) for v in run.values) == str(run)
            row = (1, "h", "smtpd", 2, 3.5, 4, "n", "a", "", "", "disconnect", "", run)
            assert flat_rows("sessions", [row]) == [row[:12] + run.values]
            assert laid_out_row("sessions", row[:12] + run.values)[12].text == run.text


def test_qmgr_from_is_the_regexs_on_fixture_and_mutated_lines():
    texts = [t.partition(": ")[2] for t in fixture_messages() if ": from=<" in t]
    assert len(texts) > 20
    extra = ["from=<a>, size=1, nrcpt=2", "from=<a>, size=1, nrcpt=12345678901234567890 (queue active)",
             "from=<a>, size=1234567890123456789, nrcpt=1", "from=<a>, size=\u0661\u0662, nrcpt=\u0663",
             "from=<a>, size=x>, size=5, nrcpt=1", "from=<a\nb>, size=1, nrcpt=1", "from=<>, size=0, nrcpt=0x"]
    cases = texts + extra + mutated(texts + extra, 20_000, seed=10)
    differ = [t for t in cases if events.qmgr_from(t) != events._qmgr_from_regex(t)
              or events.qmgr_from("Q1: " + t, 4) != events._qmgr_from_regex(t)]
    assert not differ, differ[:3]
    read = sum(events.qmgr_from(t) is not None for t in cases)
    assert 1000 < read < len(cases) - 1000  # lines read, and lines the regex refuses


def test_starts_at_is_startswith_at_a_position():
    texts = fixture_messages()[:200] + ["", "t", "to=<", "xto=<"]
    for text in texts:
        for prefix in ("to=<", "from=", "from=<", text[3:7] or "x"):
            for at in range(len(text) + 2):
                assert events.starts_at(text, prefix, at) == text.startswith(prefix, at), (text, prefix, at)


def test_printable_ascii_is_not_white_space():
    """The line's text is cut before its line break without rstrip() when the character before is one of these."""
    assert len(parse.PRINTABLE_ASCII) == 94 and not any(c.isspace() for c in parse.PRINTABLE_ASCII)
    assert all(c in parse.PRINTABLE_ASCII or c.isspace() or not c.isascii() or not c.isprintable()
               for c in map(chr, range(128)))


def test_client_is_the_regexs_on_fixture_and_mutated_lines():
    texts = fixture_messages()
    cases = texts + mutated(texts, 20_000, seed=2)
    differ = [t for t in cases if events.client(t) != regex_client(t)]
    assert not differ, differ[:3]
    assert sum(regex_client(t) == ("", "") for t in cases) > 100


def plain_submission_client(text: str) -> tuple[str, str, str, str]:
    """The reference: every field looked at, the last of each name counting."""
    fields = text.split(", ")
    name, address = regex_client(fields[0][7:])
    method = user = ""
    for field in fields[1:]:
        if field.startswith("sasl_method="):
            method = field[12:]
        elif field.startswith("sasl_username="):
            user = field[14:]
    return name, address, method, user


def test_submission_client_is_the_plain_ways_on_fixture_and_mutated_lines():
    texts = [t.partition(": ")[2] for t in fixture_messages() if ": client=" in t]
    assert len(texts) > 20  # the fixtures have client= lines to mutate
    cases = texts + mutated(texts, 20_000, seed=6)
    differ = [t for t in cases if events.submission_client(t) != plain_submission_client(t)]
    assert not differ, differ[:3]
    # both ways were taken: the usual three fields, and other forms
    usual = sum(t.count(", ") == 2 and ", sasl_method=" in t for t in cases)
    assert 1000 < usual < len(cases) - 1000


def csv_bytes(rows_by_table: dict, folder: Path) -> dict[str, bytes]:
    sink = CsvSink(folder)
    for table, chunks in rows_by_table.items():
        for rows in chunks:
            # as the parser buffers them (recipients: the middle's text made once, not by the writer)
            sink.write(table, [laid_out_row(table, row) for row in rows])
    sink.close()
    return {table: gzip.decompress((folder / f"{table}.csv.gz").read_bytes()) for table in SCHEMA}


def reference_bytes(rows_by_table: dict) -> dict[str, bytes]:
    out = {}
    for table in SCHEMA:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([name for name, _ in SCHEMA[table]])
        for rows in rows_by_table.get(table, []):
            writer.writerows(rows)
        out[table] = text.getvalue().encode()
    return out


@pytest.mark.parametrize("seed", [3, 4])
def test_csv_sink_writes_the_bytes_of_csv_writer(tmp_path, seed):
    rng = random.Random(seed)
    texts = mutated(fixture_messages(), 3000, seed)
    values = {"s": lambda: rng.choice(texts + ["", " ", ",", '"', "a\nb", "a\rb", "x,y"]),
              "i": lambda: rng.choice([-1, 0, 7, 2**62]),
              "f": lambda: rng.choice([math.nan, 0.0, -0.0, 1e-7, 1_772_928_000.25, 0.1 + 0.2, 1e22, math.inf])}
    rows_by_table = {}
    for table, spec in SCHEMA.items():
        # chunks with no text that needs quoting (written at once) and chunks with some (row by row)
        plain = [tuple(values[kind]() if kind != "s" else "abc" for _, kind in spec) for _ in range(50)]
        mixed = [tuple(values[kind]() for _, kind in spec) for _ in range(200)]
        # rows that share their last columns (as sessions share their command counts), the first ones not
        half = len(spec) // 2
        shared = [row[:half] + mixed[i % 3][half:] for i, row in enumerate(mixed)]
        rows_by_table[table] = [plain, mixed, plain[:1], shared]
    assert csv_bytes(rows_by_table, tmp_path) == reference_bytes(rows_by_table)


def test_reject_tail_fields_are_the_regexs_on_fixture_and_mutated_lines():
    tails = []
    for text in fixture_messages():
        cut = max(text.rfind("; from=<"), text.rfind("; proto="))
        if cut >= 0:
            tails.append(text[cut + 2:])
    assert len(tails) > 20  # the fixtures have reject lines to mutate
    cases = tails + mutated(tails, 20_000, seed=5)
    differ = [t for t in cases if events.tail_fields(t) != events._tail_fields_regex(t)]
    assert not differ, differ[:3]
    # both ways were taken: tails of the usual form, and tails only the regex reads
    usual = sum(events._TAIL.fullmatch(t) is not None for t in cases)
    assert 1000 < usual < len(cases) - 1000
