"""The one configuration object, read from ``RISKSTREAM_*`` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob in one place. The CLI reads it; library code receives plain values.

    The Moodle token is a SecretStr: its repr and str print ``**********``.
    """

    model_config = SettingsConfigDict(env_prefix="RISKSTREAM_", env_file=None, extra="ignore")

    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="host:port[,host:port]")
    redis_url: str = "redis://127.0.0.1:16379/0"
    moodle_url: str = Field(default="", description="Base URL of the Moodle site")
    moodle_token: SecretStr = Field(default=SecretStr(""), description="Web-service token")
    site: str = Field(default="", description="Site id on events; defaults to the Moodle host")
    # Moodle connector (riskstream connector run)
    connector_page_size: int = Field(default=1000, ge=1, le=5000, description="Log rows per call")
    connector_course_id: int = Field(default=0, ge=0, description="Poll one course (0 = site)")
    connector_idle_s: float = Field(default=2.0, gt=0, description="Wait when the log is drained")
    connector_timeout_s: float = Field(default=30.0, gt=0, description="Per Moodle request")
    connector_retries: int = Field(default=5, ge=1, description="Attempts per Moodle request")
    connector_course_refresh_s: float = Field(default=3600.0, gt=0, description="Roster refresh")
    connector_sink_group: str = "riskstream-sink"
    connector_sink_max_attempts: int = Field(default=5, ge=1, description="Then dead letter")
    connector_wait_s: int = Field(
        default=20, ge=0, le=60, description="Long poll when drained (0 = off): one call per wait"
    )
    connector_feedback_every_s: float = Field(
        default=300.0, ge=0, description="Teachers' feedback poll (0 = off)"
    )
    connector_enrolments: bool = Field(
        default=True, description="An enrolment record per roster student (no-shows are scored)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model_registry: Path = Path("var/registry")
    cache_dir: Path = Field(default=Path("var/cache"), description="Cached training tensors")
    state_dir: Path = Path("var/stack")
    data_dir: Path = Field(
        default=Path("../shared/datasets/oulad"), description="OULAD Parquet folder"
    )
    # Embedded stack (riskstream stack up): loopback ports and durability.
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    redis_port: int = Field(default=16379, ge=1, le=65535)
    broker_storage: str = Field(
        default="memory://tansu/", description="Tansu storage engine URL (memory:// or s3://)"
    )
    redis_appendonly: bool = True
    # Risk API (riskstream api): keys are stored as sha256 hex digests, never in clear.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_key_hashes: str = Field(
        default="", description="Comma-separated sha256 hex digests of the accepted API keys"
    )
    api_pseudonym_key: SecretStr = Field(
        default=SecretStr(""), description="HMAC key; when set, user ids leave as pseudonyms"
    )
    broker_durable: bool = Field(
        default=False,
        description="Keep the embedded broker's topics, data and group offsets across restarts "
        "(Tansu s3:// storage on a local s3rver; overrides broker_storage)",
    )
    s3_port: int = Field(default=19094, ge=1, le=65535, description="s3rver port (durable mode)")
    s3_gate_port: int = Field(
        default=19095, ge=1, le=65535, description="Conditional-write gate before s3rver"
    )
    s3rver_bin: str = Field(default="", description="Path to s3rver; default PATH or var/node")
    # Stream worker (stream_app): micro-batches, state window, metrics, reload, idle sweep.
    stream_batch_max: int = Field(default=1000, ge=1, description="Max events per micro-batch")
    stream_batch_within: float = Field(
        default=0.05, gt=0, description="Longest wait for events when none are there (s)"
    )
    stream_batch_cap: int = Field(
        default=8000,
        ge=0,
        description="Largest micro-batch under a backlog (Faust worker); 0 = BATCH_MAX",
    )
    stream_fetch_max_wait_ms: int = Field(
        default=10, ge=0, le=5000, description="Broker-side fetch wait (latency at low load)"
    )
    stream_window_days: int = Field(default=28, ge=1, le=366, description="Day vectors kept")
    stream_metrics_port: int = Field(default=0, ge=0, le=65535, description="0 = no endpoint")
    stream_reload_every: float = Field(default=5.0, gt=0, description="Registry poll seconds")
    stream_group: str = Field(default="riskstream-worker", description="Consumer group id")
    stream_events_topic: str = Field(default="riskstream.events", description="Topic consumed")
    stream_session_timeout_ms: int = Field(default=10_000, ge=1000)
    stream_sweep: bool = Field(
        default=True,
        description="Advance idle students daily: students who never click are scored, and "
        "the alert policy decides on closed days",
    )
    stream_explain_levels: str = Field(
        default="high",
        description="Alert levels that carry contributions, comma-separated; * = every level",
    )
    stream_sweep_lag_days: int = Field(default=1, ge=0, le=30, description="Sweep this far behind")
    stream_feedback: bool = Field(
        default=True, description="Keep teachers' feedback and hold back contacted students"
    )
    stream_metrics_host: str = Field(
        default="127.0.0.1", description="Address the metrics port binds (0.0.0.0 = every one)"
    )
    stream_max_id_jump: int = Field(
        default=100_000_000,
        ge=1,
        description="Event ids this far above the site's highest applied id are dead-lettered",
    )
    sites: str = Field(
        default="",
        description="Comma-separated site ids the worker applies; others are dead-lettered "
        "(empty = every site: any producer on the events topic can then create a site)",
    )
    stream_monitor: bool = Field(
        default=True, description="Count day vectors for drift, record withdrawals (Redis)"
    )
    # Production monitoring (riskstream monitor / retrain, API drift and calibration routes)
    monitor_psi_alarm: float = Field(default=0.25, gt=0, description="PSI that raises the alarm")
    monitor_ece_alarm: float = Field(default=0.1, gt=0, description="Live ECE that is too high")
    monitor_min_outcomes: int = Field(
        default=200, ge=1, description="Known outcomes a calibration verdict needs"
    )
    log_level: str = "INFO"
    log_json: bool = False

    @property
    def site_list(self) -> frozenset[str]:
        """``sites`` as a set (empty = every site)."""
        return frozenset(s.strip() for s in self.sites.split(",") if s.strip())

    @property
    def site_id(self) -> str:
        if self.site:
            return self.site
        if self.moodle_url:
            from urllib.parse import urlparse

            return urlparse(self.moodle_url).netloc or self.moodle_url
        return "local"


def load_settings() -> Settings:
    return Settings()
