"""simsub's benchmark suite: ratios measured in one process run, so they hold on a noisy machine."""


def write_report(out, report: dict, table: str) -> None:
    """Write ``report`` as JSON to ``out`` (a Path; its folder is made), print ``table`` and where it went."""
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table)
    print(f"written: {out}")
