"""The `riskstream api` command: key digests, and refusing keys pasted in clear."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from riskstream.api.auth import KeyChecker, hash_key, parse_key_hashes
from riskstream.cli import app


def test_hash_key_prints_the_digest_the_settings_take() -> None:
    res = CliRunner().invoke(app, ["api", "hash-key"], input="s3cret-key\n")
    assert res.exit_code == 0
    digest = res.stdout.strip()
    assert digest == hash_key("s3cret-key") and "s3cret" not in res.stdout
    checker = KeyChecker(parse_key_hashes(f" {digest.upper()} ,\n"))
    assert checker.check("Bearer s3cret-key") and checker.check("bearer  s3cret-key ")
    assert not checker.check("Bearer s3cret-key2") and not checker.check("s3cret-key")
    assert not KeyChecker(()).check("Bearer anything")


def test_serve_refuses_a_key_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_API_KEY_HASHES", "my-plain-key")
    res = CliRunner().invoke(app, ["api", "--port", "1"])
    assert res.exit_code == 2
    assert "sha256 hex digests" in res.output and "riskstream api hash-key" in res.output
