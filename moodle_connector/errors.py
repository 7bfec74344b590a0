"""Typed exceptions for Moodle's error bodies, with messages that say what to do.

Moodle answers errors with HTTP 200 and ``{"exception", "errorcode", "message"}``; the
client maps them here. No message ever contains the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PLUGIN_SERVICE = "local_riskstream"
SERVICE_HINT = (
    "Site administration > Server > Web services > External services > "
    f"'RiskStream connector' ({PLUGIN_SERVICE}) > Functions"
)
WS_ADMIN_HINT = (
    "Site administration > General > Advanced features > Enable web services, and "
    "Site administration > Server > Web services > Manage protocols > enable REST"
)


class MoodleError(RuntimeError):
    """Moodle refused a call; ``errorcode`` is Moodle's, ``function`` the wsfunction."""

    fatal = False

    def __init__(
        self,
        message: str,
        *,
        function: str = "",
        errorcode: str = "",
        exception: str = "",
        debuginfo: str = "",
    ) -> None:
        super().__init__(message)
        self.function = function
        self.errorcode = errorcode
        self.exception = exception
        self.debuginfo = debuginfo


class MoodleFatalError(MoodleError):
    """Retrying cannot help: an administrator must change something on the site."""

    fatal = True


class InvalidToken(MoodleFatalError):
    """Unknown, empty, expired or revoked token."""


class FunctionNotInService(MoodleFatalError):
    """The function exists but the token's service does not include it."""


class WebServicesDisabled(MoodleFatalError):
    """HTTP 403 with an empty body: web services or REST are switched off."""


class FunctionMissing(MoodleError):
    """Moodle does not know the function (plugin not installed, or removed in this release)."""


class AccessDenied(MoodleFatalError):
    """The token's user lacks a capability the function checks (e.g. report/log:view).

    Fatal: waiting cannot grant a capability. ``capabilities`` names the missing ones when the
    plugin's ``local_riskstream_check_access`` could tell.
    """

    capabilities: tuple[str, ...] = ()


class InvalidParameter(MoodleError):
    """Moodle rejected a parameter's type or value."""


class RecordMissing(MoodleError):
    """A record such as a course id does not exist."""


class MoodleUnavailable(MoodleError):
    """Network errors, timeouts or 5xx persisted past the retry budget."""


SETUP_HINT = (
    "run `php local/riskstream/cli/setup.php` on the Moodle server (it gives the service "
    "user's role exactly the capabilities the connector needs)"
)


def stops_everything(exc: MoodleError) -> bool:
    """Errors no call can survive (token, web services off, a missing capability); a missing
    optional function can."""
    return isinstance(exc, InvalidToken | WebServicesDisabled | AccessDenied)


def error_from_body(function: str, body: Mapping[str, Any]) -> MoodleError:
    """Map one Moodle error body to the exception class that says what to do."""
    code = str(body.get("errorcode", ""))
    exc = str(body.get("exception", ""))
    msg = str(body.get("message", ""))
    debug = str(body.get("debuginfo", ""))
    kw = {"function": function, "errorcode": code, "exception": exc, "debuginfo": debug}
    if code == "invalidtoken":
        return InvalidToken(
            "Moodle refused the web-service token (invalidtoken: "
            f"{msg}). Create a token for the '{PLUGIN_SERVICE}' service "
            "(Site administration > Server > Web services > Manage tokens) and set "
            "RISKSTREAM_MOODLE_TOKEN.",
            **kw,
        )
    if code == "accessexception":
        return FunctionNotInService(
            f"the token's web service does not allow {function}: add {function} to the "
            f"service ({SERVICE_HINT}), or use a token of the plugin's predefined service "
            f"'{PLUGIN_SERVICE}' which includes it.",
            **kw,
        )
    if code in {"invalidrecord", "invalidrecordunknown"} and "external_functions" in (msg + debug):
        return FunctionMissing(
            f"Moodle does not know {function}: install or upgrade the local_riskstream plugin, "
            "or the function was removed in this Moodle release.",
            **kw,
        )
    if code in {"invalidrecord", "invalidrecordunknown"}:
        return RecordMissing(f"{function}: {msg} ({code})", **kw)
    if code == "invalidparameter":
        detail = f": {debug}" if debug else ""
        return InvalidParameter(f"{function} rejected a parameter{detail}", **kw)
    if (
        code.startswith("nopermission")
        or code in {"requireloginerror", "accessdenied", "coursehidden"}
        or "required_capability" in exc
        or exc == "require_login_exception"
    ):
        return AccessDenied(
            f"{function}: permission denied ({msg.strip()} [{code or exc}]). The token's user "
            f"lacks a capability: {SETUP_HINT}.",
            **kw,
        )
    return MoodleError(f"{function} failed: {msg} ({code or exc})", **kw)
