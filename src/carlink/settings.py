"""Every setting, from CARLINK_* environment variables or carlink.toml."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARLINK_", toml_file="carlink.toml", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./carlink.db"
    # mqtt://user:password@host:port — the gateway's own account on the broker.
    mqtt_url: str = "mqtt://carlink-gateway@127.0.0.1:1883"
    # Prefix in front of every topic, so several carlink worlds can share one broker.
    mqtt_topic_prefix: str = "carlink"
    # MQTT 5 shared-subscription group; empty runs a single gateway with plain subscriptions.
    mqtt_shared_group: str = ""
    # Vehicle events (command states, telemetry) also go over the broker, for api instances in other
    # processes. Default: only when this instance does not run all roles; set true when an all-roles
    # instance works beside api-only ones.
    events_over_broker: bool | None = None
    base_url: str = "http://127.0.0.1:8080"
    # Secret behind session cookies, per-car broker passwords and the gateway's broker password.
    secret_key: str = Field(default="change-me-carlink-development-secret", min_length=16)
    # Seconds a remote command may wait for the car before it expires (RMT-1).
    command_ttl_seconds: int = 60
    # Minimum seconds between two wake-ups of one car (RMT-2: waking costs the 12 V battery).
    wake_interval_seconds: int = 60
    # Seconds a current-overview request waits for the woken car to report.
    wake_wait_seconds: float = 8.0
    access_token_seconds: int = 3600
    refresh_token_days: int = 365
    # ISO 3166 countries where people may register without a dealer invitation (ACC-3).
    self_registration_countries: list[str] = ["DE", "GB", "JP", "US", "NL", "AT", "CH"]
    # Sign-in guessing protection (ACC-7).
    login_failures_before_delay: int = 3
    login_failures_before_lock: int = 10
    login_lock_minutes: int = 15
    login_failures_per_source_per_10min: int = 50
    pin_failures_before_lock: int = 3
    pin_lock_minutes: int = 60
    # Rate limits per ID and car (issue 9; 429 with Retry-After): remote commands on every channel, and
    # PIN challenges (each one a PIN guess). Far above what a person does; benchmarks raise them.
    commands_per_vehicle: int = 30
    command_window_seconds: int = 300
    pin_challenges_per_vehicle: int = 10
    pin_challenge_window_seconds: int = 600
    # The Secure flag on our cookies. Unset: on, except when base_url is plain http on a loopback host
    # (the demo on 127.0.0.1), where strict clients (httpx, curl) would not send a Secure cookie back.
    secure_cookies: bool | None = None
    log_level: str = "INFO"
    log_json: bool = False
    # Outgoing mail server: smtp://host:port, smtp+starttls://user:pass@host:port or smtps://user:pass@host:port.
    smtp_url: str = "smtp://127.0.0.1:8025"
    # Sender of every mail; its domain also names the outbox Message-IDs.
    mail_from: str = "carlink <no-reply@carlink.example.com>"
    # Seconds one SMTP step (connect, a command, a message) may take before the attempt counts as failed.
    smtp_timeout_seconds: float = 10.0
    # Delivery attempts of one mail before it is marked failed and left for an operator.
    smtp_max_attempts: int = 20
    # Days a dealer's registration link stays valid (ACC-2, ACC-4).
    invitation_days: int = 14
    # Times per hour one address may ask for its registration mail again (ACC-4).
    invitation_requests_per_hour: int = 3
    # Signed data packages (issue 6): where package files are kept, named by their SHA-256 ...
    package_dir: str = ".carlink-packages"
    # ... and how long before root or targets metadata expires the jobs role signs a new version.
    package_renew_margin_hours: int = 72

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


@lru_cache
def get_settings() -> Settings:
    return Settings()
