"""Settings of the sensors: when a landed day is complete, and where alerts go."""

import dagster as dg
from pydantic import Field

from consumer_assets.automation.alerts import EmailNotifier, WebhookNotifier


class LandingSensorResource(dg.ConfigurableResource):
    """When the landing sensor considers a day's files complete."""

    completion: str = Field(
        default="marker",
        description="'marker': a day is complete when its _SUCCESS file lands; 'quiet': when no file has arrived for "
        "quiet_seconds.",
    )
    quiet_seconds: float = Field(default=600.0, description="Quiet period of the 'quiet' mode.")
    lookback_days: int = Field(default=7, description="Late files are picked up for days up to this old.")
    reconcile_days: int = Field(
        default=60, description="The reconcile sensor compares the instance with storage for days up to this old."
    )
    rescan_seconds: float = Field(
        default=900.0,
        description="How often each recent day's landing folder is listed whole, to see late files whose names sort "
        "before the others.",
    )


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: a Slack-compatible webhook and/or e-mail. Unset: alerts are only logged."""

    webhook_url: str | None = Field(
        default=None, description="POST target of the JSON alerts (Slack incoming webhook or any HTTP endpoint)."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail alerts.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_sender: str = Field(default="consumer-assets@localhost", description="From address of e-mail alerts.")
    smtp_recipients: str = Field(default="", description="Comma-separated recipients of e-mail alerts.")
    smtp_username: str | None = Field(default=None, description="SMTP login, when the server needs one.")
    smtp_password: str | None = Field(default=None, description="SMTP password (use an EnvVar).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    ui_url: str = Field(
        default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for the run links in alerts."
    )
    retries: int = Field(default=3, description="Retries of a failing endpoint, with exponential backoff.")
    backoff_seconds: float = Field(default=1.0, description="First wait between retries; doubles each time.")

    def notifiers(self) -> list:
        notifiers: list = []
        if self.webhook_url:
            notifiers.append(WebhookNotifier(self.webhook_url))
        recipients = tuple(r.strip() for r in self.smtp_recipients.split(",") if r.strip())
        if self.smtp_host and recipients:
            notifiers.append(
                EmailNotifier(
                    self.smtp_host,
                    self.smtp_port,
                    self.smtp_sender,
                    recipients,
                    self.smtp_username,
                    self.smtp_password,
                    self.smtp_starttls,
                )
            )
        return notifiers
