"""The operators' channel: administrator/operator alerts by incoming webhook and/or e-mail.

Independent of FCM on purpose: the alert that says "push credentials broken" must reach someone.
Owns the text of a notice (a pure function), the two senders and `build_channels(settings)`.
A send never raises for a delivery problem; it returns a one-line reason, never the webhook URL
(it holds the channel's key), a password or a response body that is not plain text.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from hlfsync.notify import google_token
from hlfsync.settings import Settings

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger(__name__)

NOT_CONFIGURED = (
    "operators would not be told: set HLFSYNC_OPERATOR_WEBHOOK_URL or HLFSYNC_OPERATOR_SMTP_HOST"
)
# What each alert kind means to an operator; kinds not listed (contract drift, new ones) still go
# out, named by their kind.
TITLES = {
    "auth_failure": "credentials refused",
    "breaker_open": "circuit breaker open: calls to Dynamics paused",
    "compensation": "compensation check found duplicates",
}
CHECK_NAMES = {"fcm": "push (FCM)", "dynamics": "Dynamics"}


@dataclass(frozen=True, slots=True)
class Notice:
    """One row of `operator_notices`, as the channels need it."""

    kind: str
    incident_key: str
    event: str  # raised | recovered
    details: Mapping[str, Any]


def notice_text(notice: Notice) -> str:
    """One line an operator can act on: what, which incident, the reason; no secrets, no markup."""
    title = TITLES.get(notice.kind, notice.kind.replace("_", " "))
    check = notice.details.get("check")
    if notice.kind == "auth_failure" and isinstance(check, str):
        title = f"{CHECK_NAMES.get(check, check)} credentials refused"
    state = "RECOVERED" if notice.event == "recovered" else "ALERT"
    detail = notice.details.get("detail")
    reason = "" if notice.event == "recovered" or not detail else f": {detail}"
    line = f"hlfsync {state}: {title} (incident {notice.incident_key}){reason}"
    return google_token.one_line(line, 400)


def webhook_body(text: str) -> dict[str, str]:
    """`{"text": ...}`: what Slack incoming webhooks and Teams (workflow) webhooks both accept."""
    return {"text": text}


def email_message(text: str, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = text[:120]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(text + "\n\nSee `hlfsync status` and docs/operations.md.\n")
    return message


class Channel(Protocol):
    name: str

    async def send(self, text: str) -> str | None:
        """None when the channel took the notice, else a one-line reason to retry."""
        ...


class WebhookChannel:
    """Posts `{"text": ...}` to an incoming webhook; a 2xx is delivered."""

    name = "webhook"

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http

    def __repr__(self) -> str:
        return "WebhookChannel()"  # the URL is a secret

    async def send(self, text: str) -> str | None:
        import httpx  # here: `hlfsync status` asks this module about channels, not for HTTP

        try:
            response = await self._http.post(self._url, json=webhook_body(text))
        except httpx.HTTPError as exc:
            return f"webhook unreachable ({type(exc).__name__})"
        if 200 <= response.status_code < 300:
            return None
        return f"webhook answered HTTP {response.status_code}"

    async def aclose(self) -> None:
        await self._http.aclose()


class SmtpChannel:
    """Sends one e-mail per notice over SMTP (stdlib smtplib, in a worker thread)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: Sequence[str],
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._security = security
        self._username, self._password = username, password
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"SmtpChannel(host={self._host!r}, port={self._port})"

    async def send(self, text: str) -> str | None:
        message = email_message(text, sender=self._sender, recipients=self._recipients)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPResponseException as exc:
            return f"SMTP server answered {exc.smtp_code}"
        except (smtplib.SMTPException, OSError) as exc:
            return f"SMTP failed ({type(exc).__name__})"
        return None

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._security == "ssl":
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        with smtp:
            if self._security == "starttls":
                smtp.starttls(context=context)
            if self._username and self._password:
                smtp.login(self._username, self._password)
            smtp.send_message(message)

    async def aclose(self) -> None:
        return None


def build_channels(settings: Settings) -> list[Channel]:
    """The configured channels; empty when neither the webhook nor SMTP is set."""
    channels: list[Channel] = []
    if settings.operator_webhook_url is not None:
        import httpx

        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.operator_timeout), follow_redirects=False
        )
        channels.append(WebhookChannel(settings.operator_webhook_url.get_secret_value(), http))
    if settings.operator_smtp_host and settings.operator_smtp_from and settings.operator_smtp_to:
        password = settings.operator_smtp_password
        channels.append(
            SmtpChannel(
                settings.operator_smtp_host,
                settings.operator_smtp_port,
                sender=settings.operator_smtp_from,
                recipients=settings.operator_smtp_to.split(","),
                security=settings.operator_smtp_security,
                username=settings.operator_smtp_username,
                password=None if password is None else password.get_secret_value(),
                timeout_s=settings.operator_timeout,
            )
        )
    return channels


def channel_problem(settings: Settings) -> str | None:
    """What `status` and `health` say when no operators' channel is configured, else None."""
    configured = settings.operator_webhook_url is not None or bool(settings.operator_smtp_host)
    return None if configured else NOT_CONFIGURED
