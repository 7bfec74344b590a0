"""The risk API: FastAPI over the stream worker's Redis state, plus the operator page."""

from riskstream.api.app import ApiConfig, create_app

__all__ = ["ApiConfig", "create_app"]
