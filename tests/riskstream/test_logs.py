from riskstream.logs import scrub


def test_scrub_blanks_secrets_in_keys_and_urls() -> None:
    out = scrub(None, "info", {"token": "abc", "url": "https://m/x?wstoken=abc&f=1", "n": 1})
    assert out["token"] == "**********"
    assert "abc" not in out["url"] and "f=1" in out["url"]
    assert out["n"] == 1


def test_logging_survives_a_replaced_stderr(capsys) -> None:  # type: ignore[no-untyped-def]
    import io
    import sys

    import structlog

    from riskstream.logs import configure_logging

    configure_logging("INFO")
    log = structlog.get_logger("t")
    old = sys.stderr
    closed = io.StringIO()
    sys.stderr = closed
    closed.close()
    sys.stderr = io.StringIO()
    try:
        log.info("after swap", token="secret-value")
        out = sys.stderr.getvalue()
    finally:
        sys.stderr = old
    assert "after swap" in out and "secret-value" not in out
