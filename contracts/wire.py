"""Bytes <-> contract models, with errors that name the offending field."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from contracts.events import LmsEvent

M = TypeVar("M", bound=BaseModel)


class ContractError(ValueError):
    """A payload does not satisfy the contract; the message names each bad field."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"invalid {model}: {detail}")
        self.model = model
        self.detail = detail


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(payload)"
        parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)


def encode(model: BaseModel) -> bytes:
    """Compact JSON, the one encoding used on every topic."""
    return model.model_dump_json(exclude_none=True).encode()


def decode(cls: type[M], raw: bytes | str) -> M:
    """Parse and validate; raises ContractError naming the fields that are wrong."""
    try:
        return cls.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(cls.__name__, _describe(exc)) from None


def decode_event(raw: bytes | str) -> LmsEvent:
    return decode(LmsEvent, raw)
