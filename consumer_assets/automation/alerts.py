"""Alerts: a message per failed check or failed run, delivered to a webhook and/or by e-mail.

Plain Python (urllib and smtplib): the alert sensor decides what to send, this module
formats and delivers it, retrying a failing endpoint with backoff.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """An alert could not be delivered after every retry."""


@dataclass(frozen=True)
class Alert:
    """What went wrong, where, with its figures and a link to the run."""

    title: str
    asset: str | None
    partition: str | None
    check: str | None
    run_id: str
    run_url: str
    figures: dict = field(default_factory=dict)
    severity: str = "ERROR"

    @property
    def text(self) -> str:
        where = " ".join(
            part for part in (self.asset, f"[{self.partition}]" if self.partition else None, self.check) if part
        )
        figures = ", ".join(f"{name}={_short(value)}" for name, value in self.figures.items())
        return (
            f"{self.severity}: {self.title}"
            + (f" — {where}" if where else "")
            + (f"\n{figures}" if figures else "")
            + f"\nRun: {self.run_url}"
        )

    def slack_payload(self) -> dict:
        """Slack-compatible JSON: ``text`` for any webhook, plus the fields for tools that read them."""
        return {
            "text": self.text,
            "asset": self.asset,
            "partition": self.partition,
            "check": self.check,
            "severity": self.severity,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "figures": self.figures,
        }


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def with_retries(send: Callable[[], None], what: str, retries: int, backoff_seconds: float) -> None:
    """Call ``send`` until it succeeds, at most ``retries + 1`` times, waiting longer each time."""
    for attempt in range(retries + 1):
        try:
            send()
            return
        except (OSError, smtplib.SMTPException) as exc:
            if attempt == retries:
                raise DeliveryError(f"{what} failed after {retries + 1} attempts: {exc}") from exc
            wait = backoff_seconds * 2**attempt
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, wait)
            time.sleep(wait)


@dataclass(frozen=True)
class WebhookNotifier:
    url: str
    timeout_seconds: float = 10.0

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(alert.slack_payload()).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # raises on 4xx/5xx
            response.read()

    def __str__(self) -> str:
        """The host only: a webhook's path is its secret (Slack's carries the token), and this text reaches logs and
        tick history."""
        parts = urllib.parse.urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def __repr__(self) -> str:
        return f"WebhookNotifier({self})"


@dataclass(frozen=True)
class EmailNotifier:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 10.0

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[consumer-assets] {alert.severity}: {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)

    def __str__(self) -> str:
        return f"e-mail via {self.host}:{self.port}"


def deliver(
    alert: Alert, notifiers: Sequence[WebhookNotifier | EmailNotifier], retries: int = 3, backoff_seconds: float = 1.0
) -> None:
    """Send ``alert`` through every notifier; raise if any of them still fails after its retries."""
    failures = []
    for notifier in notifiers:
        try:
            with_retries(lambda n=notifier: n.send(alert), f"alert to {notifier}", retries, backoff_seconds)
        except DeliveryError as exc:
            failures.append(str(exc))
    if failures:
        raise DeliveryError("; ".join(failures))
