"""Every Kafka topic name in one place."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Topic names; campus consumers subscribe to ``alerts`` and ``risk_latest``."""

    events: str = "riskstream.events"
    alerts: str = "riskstream.alerts"
    risk_latest: str = "riskstream.risk.latest"
    dead_letter: str = "riskstream.dead-letter"
    feedback: str = "riskstream.feedback"

    def all(self) -> tuple[str, ...]:
        return (self.events, self.alerts, self.risk_latest, self.dead_letter, self.feedback)


TOPICS = Topics()
