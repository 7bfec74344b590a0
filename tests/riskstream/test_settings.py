import pytest

from riskstream.settings import Settings


def test_env_prefix_and_secret_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_MOODLE_TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("RISKSTREAM_KAFKA_BOOTSTRAP", "k:9092")
    monkeypatch.setenv("RISKSTREAM_MOODLE_URL", "https://moodle.uni.example/")
    s = Settings()
    assert s.kafka_bootstrap == "k:9092"
    assert s.moodle_token.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s)
    assert "s3cr3t" not in s.model_dump_json()
    assert s.site_id == "moodle.uni.example"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device"):
        Settings()
