"""The one settings object. Nothing else in the code base reads os.environ."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SPIS_"
MIN_SECRET_LENGTH = 32
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev"})


class Settings(BaseSettings):
    """Defaults give the embedded set-up: a SQLite file and an on-disk broker under ./var/."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    # Signs SPIS's own access tokens and keys the NHS-number blind index. Generated into var/ in
    # development so that several API processes share it; must be given in production.
    token_secret: SecretStr = SecretStr("")
    blind_index_key: SecretStr = SecretStr("")
    # The key-encryption key: wraps the data keys that encrypt patient data at rest. It is never
    # stored in the database; keep it in a secrets manager in production.
    kek: SecretStr = SecretStr("")
    # SPIS's own JOSE keys (JWE to us, signed deliveries from us). None → <var_dir>/keys.
    # Generated on first use outside production; must already exist in production.
    transit_keys_dir: Path | None = None
    # PostgreSQL: `spis migrate` creates this role if missing and grants it only what the API,
    # worker and beat need (no UPDATE/DELETE on audit_event, and it owns nothing, so it cannot
    # disable triggers). Those processes then connect as it. The password is needed to create it.
    app_database_role: str | None = None
    app_database_password: SecretStr | None = None
    access_token_lifetime_s: int = 300
    max_assertion_lifetime_s: int = 300
    clock_skew_s: int = 60
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    default_page_size: int = 50
    max_page_size: int = 500
    broker_sla: int = 5  # working days a time bank has to answer a routed referral
    # After the reminder, working days before an unanswered referral goes to the next time bank.
    broker_reminder_grace_working_days: int = 2
    # The Celery queue: separate deployments (or test runs) sharing one broker use different ones.
    queue: str = "spis"
    reencrypt_batch_size: int = 500
    relay_interval_s: float = 30.0
    relay_after_s: float = 30.0
    sla_sweep_interval_s: float = 3600.0
    # The web workspace (people, not SMART clients). Sessions end after this long without a
    # request, and in any case this long after sign-in.
    web_idle_timeout_s: int = 1800
    web_absolute_timeout_s: int = 43200
    setup_link_lifetime_s: int = 86400
    # Lock-out: from this many failed sign-ins in a row, the account is locked for
    # base * 2^(failures - threshold) seconds, at most max.
    sign_in_lockout_threshold: int = 5
    sign_in_lockout_base_s: int = 60
    sign_in_lockout_max_s: int = 3600
    # "required": roles that see person-level data (broker, practice) must use a TOTP second
    # factor. "optional" is for development and the demo only; production refuses it.
    web_second_factor: Literal["required", "optional"] = "required"
    # Outcomes for health boards (DESIGN §9, docs/outcomes.md). Cohort rules: the baseline is the
    # first score within this many days of enrolment (either side); the follow-up the last score
    # this many weeks after the baseline.
    outcome_baseline_window_days: int = 30
    outcome_follow_up_min_weeks: int = 8
    outcome_follow_up_max_weeks: int = 26
    # Meaningful individual change per scale, in the scale's own points. SWEMWBS (Shah et al.
    # 2018) and WEMWBS (Maheswaran et al. 2012) are published reliable-change thresholds; the ONS4
    # and UCLA-3 defaults are SPIS's assumption (no validated threshold is published).
    outcome_meaningful_change: dict[str, float] = {
        "swemwbs": 3.0,
        "wemwbs": 9.0,
        "ons4-life-satisfaction": 2.0,
        "ons4-worthwhile": 2.0,
        "ons4-happy": 2.0,
        "ons4-anxiety": 2.0,
        "ucla3": 2.0,
    }
    # Social value estimate: an hour of time exchanged, and one WELLBY (a one-point change in
    # life satisfaction on 0–10 for one person for a year: HM Treasury Green Book supplementary
    # guidance on wellbeing, 2021, central value £13,000 in 2019 prices).
    social_value_per_hour_pence: int = 1221  # the National Living Wage from April 2025, £12.21
    social_value_per_hour_basis: str = "National Living Wage, April 2025"
    wellby_value_pence: int = 1_300_000
    wellby_price_year: int = 2019
    # The workers compute again, this often, the cached reports whose figures have changed
    # (outcomes/warm.py), so that a board's next pull is served from the cache; a report no one
    # has pulled for this many days is forgotten instead.
    outcome_report_warm_interval_s: float = 60.0
    outcome_report_keep_days: int = 7
    # Deliveries to Subscriptions (docs/deliveries.md). A failed delivery is tried again after
    # base * 2^(attempts - 1) seconds (at most max, with jitter), until this long after the event;
    # then it is dead-lettered and its subscription goes to `error`.
    delivery_retry_window_s: float = 86400.0
    delivery_backoff_base_s: float = 2.0
    delivery_backoff_max_s: float = 3600.0
    delivery_timeout_s: float = 10.0
    # The beat sweep: sends what is due again (a retry's time came, a message was lost), and
    # heartbeats.
    delivery_sweep_interval_s: float = 5.0
    # Comma-separated hosts (or host:port) a subscription's endpoint may use although they
    # resolve to loopback, private or link-local addresses: for tests and the demo. Empty by
    # default; in production every endpoint must be https.
    delivery_allowed_hosts: str = ""
    # The shortest heartbeat period a subscriber may ask for.
    delivery_min_heartbeat_s: int = 60

    @property
    def delivery_allowed_host_set(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.delivery_allowed_hosts.split(",") if h.strip()
        )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme, separator, rest = url.partition("://")
        if scheme == "postgres" and separator:  # Heroku's and libpq's spelling
            return f"postgresql://{rest}"
        if url and (not separator or scheme not in DATABASE_SCHEMES):
            # Without "://" the whole value may be a password: never quote it.
            found = f"{scheme}:// is not one of them" if separator else "this is not a URL"
            raise ValueError(
                "SPIS runs on PostgreSQL (postgresql://user:password@host:5432/spis) or SQLite "
                f"(sqlite:///path/spis.sqlite3); {found}"
            )
        return url

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'spis.sqlite3'}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if self.environment == "production" and self.web_second_factor != "required":
            raise ValueError("SPIS_WEB_SECOND_FACTOR must be 'required' in production")
        for name in ("token_secret", "blind_index_key", "kek"):
            value: SecretStr = getattr(self, name)
            if (
                self.environment == "production"
                and len(value.get_secret_value()) < MIN_SECRET_LENGTH
            ):
                raise ValueError(
                    f"SPIS_{name.upper()} must be at least {MIN_SECRET_LENGTH} characters in production"
                )
            if value.get_secret_value() in PLACEHOLDER_SECRETS:
                if self.environment == "production":
                    raise ValueError(
                        f"SPIS_{name.upper()} must be set to a real secret in production"
                    )
                setattr(self, name, SecretStr(_development_secret(self.var_dir, name)))
        return self

    @property
    def token_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/auth/token"

    @property
    def fhir_base_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/fhir"


def _development_secret(var_dir: Path, name: str) -> str:
    """A random secret kept in var/secrets so that every local process agrees on it."""
    path = var_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:  # the operator's folder: name it and the setting that chose it
        raise OSError(
            exc.errno,
            f"cannot create the folder for local secrets: {exc.strerror} (SPIS_VAR_DIR is "
            f"{var_dir}: set it to a folder SPIS can write)",
            str(path.parent),
        ) from None
    tmp = path.with_name(f".{name}.{secrets.token_hex(8)}")
    tmp.write_text(secrets.token_urlsafe(48))
    tmp.chmod(0o600)
    try:  # link() refuses to overwrite: when two processes race, the first one's secret wins
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
