from riskstream.logs import scrub


def test_scrub_blanks_secrets_in_keys_and_urls() -> None:
    out = scrub(None, "info", {"token": "abc", "url": "https://m/x?wstoken=abc&f=1", "n": 1})
    assert out["token"] == "**********"
    assert "abc" not in out["url"] and "f=1" in out["url"]
    assert out["n"] == 1
