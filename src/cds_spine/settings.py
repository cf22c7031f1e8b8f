"""Every CDS_SPINE_* setting, in one place. Defaults are safe and work out of the box."""
from __future__ import annotations

import ipaddress
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Role = Literal["viewer", "analyst"]
EhrProfile = Literal["generic", "epic", "oracle-health"]
"""How cards are shaped for the EHR that shows them (never what the pathway decides)."""
"""An audit reader's role: an analyst may see plain patient ids where the store keeps them."""


USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
"""An audit user's name: shown in the audit and its log, so plain characters only."""


class AuditUser(BaseModel):
    """One named user of the audit (api-keys mode, CDS_SPINE_AUDIT_USERS): the key itself is never configured,
    only its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    role: Role
    key_sha256: str

    @field_validator("name")
    @classmethod
    def plain_name(cls, name: str) -> str:
        if not USER_NAME.fullmatch(name):
            raise ValueError("a user's name may hold letters, digits and . _ @ + - only (it is shown in the audit "
                             "and its log)")
        return name

    @field_validator("key_sha256")
    @classmethod
    def key_hash(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("key_sha256 is the SHA-256 of the user's key, 64 lower-case hexadecimal characters, "
                             "never the key itself: `cds-spine audit-key NAME ROLE` makes a key and prints the "
                             "entry to put here")
        return value


PLACEHOLDER = "CHANGE-ME"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_url(value: str) -> str:
    """An absolute https URL (http only on a loopback host, for trying things locally); ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"must be an absolute URL such as https://cds.example.org, not {value!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"must be https (http only on a loopback host such as localhost), not {value!r}")
    return value


HttpsUrls = Annotated[tuple[str, ...], AfterValidator(lambda urls: tuple(https_url(url) for url in urls))]
"""FHIR base URLs a SMART launch may come from: https (http only on a loopback host)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_SPINE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    """Server worker processes (`cds-spine serve --workers`); each keeps its own connections to the audit store."""
    cards_dir: Path | None = None
    """Clinical knowledge folder (pathway.yaml, valuesets/); default: the copy packed in the installed package."""
    local_code_systems: Path | None = None
    """YAML file mapping the site's local code systems to standard ones (`local:`, and `not_read:` for systems
    no rule reads), read with cards/code-systems.yaml; docs/deploy.md says how."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    """Comma-separated origins allowed to call from a browser; `*` (the default) allows any."""
    fhir_timeout_seconds: float = Field(3.0, gt=0)
    """Overall time budget for fetching what prefetch did not supply."""
    fhir_page_cap: int = Field(50, ge=1)
    """Most pages followed per FHIR search; more means incomplete data (412)."""
    fhir_max_entries: int = Field(20_000, ge=1)
    """Most Bundle entries one FHIR search may return, over all its pages; more: 412."""
    fhir_max_response_bytes: int = Field(16_000_000, ge=1024)
    """Largest FHIR response page read (after decompression); larger: 412."""
    allow_unauthenticated_fhir: bool = False
    """Query fhirServer without a token when the request has no fhirAuthorization (the public sandbox)."""
    info_card_when_met: bool = False
    """Also return an info card when the pathway's criteria are met."""
    smart_client_id: str | None = None
    """The pathway timeline's client id at the EHR (a SMART public client, docs/deploy.md); unset: the app at
    /app is off and cards carry no link to it. Needs CDS_SPINE_PUBLIC_BASE_URL."""
    smart_link: bool = True
    """Cards link to the pathway timeline (a `smart` link) when the app is on; false for an EHR that has not
    allow-listed the link."""
    smart_idle_minutes: float = Field(15, gt=0, le=720)
    """A pathway-timeline session not used for this long ends (a shared workstation left open); its page's
    "End session" ends it at once."""
    smart_fhir_servers: Annotated[HttpsUrls, NoDecode] = ()
    """Comma-separated FHIR base URLs the app may be launched from (`iss`), besides the trusted clients'
    `fhir_servers`: https (http only on a loopback host)."""
    sandbox_fhir_servers: Annotated[HttpsUrls, NoDecode] = ("https://launch.smarthealthit.org/v/r2/fhir",
                                                             "https://launch.smarthealthit.org/v/r4/fhir")
    """Comma-separated FHIR base URLs a sandbox call's fhirServer may name (CDS_SPINE_SANDBOX): the public
    sandbox's, or the FHIR server you point a sandbox at."""
    annotate_orders: bool = False
    """Also answer a system action that records the pathway's assessment on each draft ESI or surgery
    ServiceRequest (an extension, cards/structuredefinition-pathway-assessment.json)."""
    override_memory_hours: float = Field(24, ge=0)
    """After a clinician overrides a card, calls for the same patient and order within this many hours do not
    show that card's topic again (0: always show)."""
    ehr_profile: EhrProfile = "generic"
    """How cards are shaped for a caller whose trusted-clients entry names no `profile` (docs/deploy.md)."""
    epic_referral_preference_item: str | None = None
    """The Epic preference-list item of the site's physical-therapy referral: under the epic profile, the
    referral suggestion orders it; without it the suggestion is left out."""
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    """Log lines as readable text or one JSON object per line (for a log pipeline; the Docker image sets json)."""

    auth: Literal["required", "disabled"] | None = None
    """Verify the EHR's JWT on every call. Unset: disabled on a loopback address, required otherwise."""
    trusted_clients: Path | None = None
    """YAML file listing the EHRs trusted to call (iss, jwks_url or jwks_file, tenants, algorithms)."""
    root_path: str = ""
    """The path prefix a reverse proxy serves the service under and strips (e.g. /cds-spine): the dashboard's
    links and redirects carry it."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies trusted for X-Forwarded-Proto/-For (comma-separated IP addresses or CIDR networks; never `*`):
    behind TLS, the session cookie is then Secure."""
    public_base_url: str | None = None
    """The service's external base URL (behind a proxy); JWT `aud` must be this plus the path called."""
    sandbox: bool = False
    """Trust the public CDS Hooks sandbox (its private key is public: for testing only)."""
    jwt_leeway_seconds: int = Field(60, ge=0)
    jwt_max_lifetime_seconds: int = Field(3600, ge=1)
    jwks_cache_seconds: int = Field(3600, ge=60)
    max_body_bytes: int = Field(20_000_000, ge=1024)
    """Largest request body accepted (413 above it): a 10,000-resource patient in EHR shape is about 16 MB."""
    body_timeout_seconds: float = Field(30.0, gt=0)
    """Longest time to receive a request body (408 after it): a client trickling bytes cannot hold a slot."""
    max_draft_orders: int = Field(100, ge=1)
    """Most draft orders in one call (400 above it); a real ordering session carries a handful."""
    max_json_containers: int = Field(1_000_000, ge=1000)
    """Most JSON objects and arrays in one body, which bounds parsing memory (nesting is capped at 1024)."""
    database_url: str = "sqlite:///cds-spine.db"
    """The audit store: SQLite in a file under the working directory, or postgresql://user@host/db."""

    @field_validator("database_url")
    @classmethod
    def supported_store(cls, url: str) -> str:
        if not re.match(r"(sqlite|postgres(ql)?(\+psycopg)?)://", url):
            raise ValueError("the audit store is SQLite (sqlite:///path/to/file.db) or PostgreSQL "
                             "(postgresql://user:password@host:5432/db)")
        return url
    schema_managed: bool = False
    """The audit schema is migrated by `cds-spine migrate` (a Kubernetes Job, a deploy step): serving does not
    migrate, and refuses to start while the schema is behind."""
    secret_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Comma-separated secrets, each at least 32 characters, the pathway timeline's cookies are sealed with:
    the first seals, every one opens (rotation: put a new one first, drop the old one 12 hours later). Required
    with the timeline on and authentication required; unset on a loopback address, a random one per process."""
    audit_hash_key: SecretStr | None = None
    """Key of the keyed hash that stands for patient ids in the audit and the logs; unset: a random key
    created once and kept in the store."""
    audit_plain_patient_ids: bool = False
    """Store plain patient ids in the audit instead of keyed hashes."""
    audit_required: bool = True
    """When the audit store is down, answer 503 rather than advise without a record; false: answer and log."""
    audit_auth: Literal["api-keys", "oidc"] = "api-keys"
    """How audit readers (/audit, /dashboard) sign in: named API keys (CDS_SPINE_AUDIT_USERS) or OIDC bearer
    tokens (CDS_SPINE_AUDIT_OIDC_*). Neither configured: /audit and /dashboard answer 404."""
    audit_users: tuple[AuditUser, ...] = ()
    """api-keys: JSON list of {"name", "role" (viewer or analyst), "key_sha256"}; `cds-spine audit-key` makes one."""
    audit_oidc_issuer: str | None = None
    """oidc: the provider's issuer (`iss`)."""
    audit_oidc_audience: str | None = None
    """oidc: the audience (`aud`) tokens must be issued for."""
    audit_oidc_jwks_url: str | None = None
    """oidc: the provider's JWKS (https), cached for CDS_SPINE_JWKS_CACHE_SECONDS."""
    audit_oidc_jwks_file: Path | None = None
    """oidc: pinned keys instead of the JWKS URL."""
    audit_oidc_user_claim: str = "preferred_username"
    """oidc: the claim naming the user (then `sub`)."""
    audit_oidc_roles_claim: str = "roles"
    """oidc: the claim whose values grant a role: cds-spine-analyst or cds-spine-viewer."""
    audit_max_failures_per_minute: int = Field(10, ge=1)
    """Wrong audit credentials allowed per client address per minute (per worker); then 429."""
    audit_max_failures_per_user: int = Field(20, ge=1)
    """api-keys: wrong keys naming one user allowed in 15 minutes (per worker); then every key naming that user,
    the right one included, gets 429 until the window clears."""
    adherence_target: float = Field(0.8, ge=0, le=1)
    """The adherence rate the quality team aims for: the dashboard draws it on the trend."""
    bulk_runs_dir: Path | None = None
    """A folder of `cds-spine audit-bulk --out` runs the dashboard and the /audit reports can open (`run`)."""
    spark_master: str = "local[*]"
    """`cds-spine audit-bulk --engine spark`: the Spark master (local[*], spark://host:7077, yarn, k8s://...)."""

    @field_validator("secret_keys")
    @classmethod
    def long_secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(key.get_secret_value()) < 32 for key in value):
            raise ValueError("each secret must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("cors_origins", "smart_fhir_servers", "sandbox_fhir_servers", "secret_keys", mode="before")
    @classmethod
    def split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def forwarded_from_named_proxies_only(cls, value: str) -> str:
        """The proxies' addresses or networks: never `*` (or 0.0.0.0/0), with which any client could say who it
        is (X-Forwarded-For) and so slip past the per-address limit on audit sign-in and into the logs."""
        for item in (part.strip() for part in value.split(",") if part.strip()):
            if item == "*":
                raise ValueError("`*` would let any client choose its own address (X-Forwarded-For): past the "
                                 "limit on wrong audit credentials and into the logs; name the proxy's addresses or "
                                 "networks, e.g. 10.244.0.0/16")
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (CIDR) of a proxy") from None
            if network.prefixlen == 0:
                raise ValueError(f"{item} is every address, as `*`: name the proxy's addresses or networks")
        return value

    @field_validator("root_path")
    @classmethod
    def root_path_is_a_prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or any(c in value for c in "?#\\ ")):
            raise ValueError(f"must be a path prefix such as /cds-spine, not {value!r}")
        return value

    @field_validator("public_base_url")
    @classmethod
    def public_base_url_is_absolute(cls, value: str | None) -> str | None:
        """The URL EHRs call: absolute https (http only on a loopback host, for trying it locally)."""
        return value if value is None else https_url(value)

    @field_validator("*")
    @classmethod
    def no_shipped_placeholder(cls, value: object) -> object:
        """A value still holding the CHANGE-ME placeholder of the shipped examples (deploy/kubernetes) is refused:
        a known audit hash key or password is no key at all. The value itself is never shown."""
        values = value if isinstance(value, tuple) else (value,)
        text = " ".join(v.get_secret_value() if isinstance(v, SecretStr) else
                        v.model_dump_json() if isinstance(v, AuditUser) else str(v) for v in values)
        if PLACEHOLDER in text.upper():
            raise ValueError(f"still holds the shipped placeholder {PLACEHOLDER}: set the real value")
        return value

    @model_validator(mode="after")
    def audit_sign_in_is_complete(self) -> Settings:
        if self.audit_auth == "oidc":
            if not self.audit_oidc_issuer or not self.audit_oidc_audience:
                raise ValueError("CDS_SPINE_AUDIT_AUTH=oidc needs CDS_SPINE_AUDIT_OIDC_ISSUER and "
                                 "CDS_SPINE_AUDIT_OIDC_AUDIENCE")
            if (self.audit_oidc_jwks_url is None) == (self.audit_oidc_jwks_file is None):
                raise ValueError("CDS_SPINE_AUDIT_AUTH=oidc needs one of CDS_SPINE_AUDIT_OIDC_JWKS_URL and "
                                 "CDS_SPINE_AUDIT_OIDC_JWKS_FILE")
        if self.smart_client_id and not self.public_base_url:
            raise ValueError("CDS_SPINE_SMART_CLIENT_ID needs CDS_SPINE_PUBLIC_BASE_URL (the app's redirect URI "
                             "and the cards' launch URL start with it)")
        if self.smart_client_id and not self.secret_keys and (self.auth_required() or self.workers > 1):
            raise ValueError("CDS_SPINE_SMART_CLIENT_ID with authentication required (or several workers) needs "
                             "CDS_SPINE_SECRET_KEYS: the secret every worker and replica seals the timeline's "
                             "cookies with (docs/deploy.md, Security)")
        names = [user.name for user in self.audit_users]
        if len(set(names)) != len(names):
            raise ValueError("CDS_SPINE_AUDIT_USERS lists a user name twice")
        return self

    def binds_loopback(self) -> bool:
        return _is_loopback(self.host)

    def auth_required(self) -> bool:
        return self.auth == "required" if self.auth else not self.binds_loopback()

    def smart_launch_url(self) -> str | None:
        """The pathway timeline's launch URL, when the app is on."""
        if not self.smart_client_id or not self.public_base_url:
            return None
        return f"{self.public_base_url.rstrip('/')}/app/launch"

    def knowledge_dir(self) -> Path:
        if self.cards_dir is not None:
            return self.cards_dir
        return Path(str(resources.files("cds_spine") / "cards"))
