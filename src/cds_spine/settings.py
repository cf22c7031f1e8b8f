"""Every CDS_SPINE_* setting, in one place. Defaults are safe and work out of the box."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_SPINE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    cards_dir: Path | None = None
    """Clinical knowledge folder (pathway.yaml, valuesets/); default: the copy packed in the installed package."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    """Comma-separated origins allowed to call from a browser; `*` (the default) allows any."""
    fhir_timeout_seconds: float = Field(3.0, gt=0)
    """Overall time budget for fetching what prefetch did not supply."""
    fhir_page_cap: int = Field(50, ge=1)
    """Most pages followed per FHIR search; more means incomplete data (412)."""
    allow_unauthenticated_fhir: bool = False
    """Query fhirServer without a token when the request has no fhirAuthorization (the public sandbox)."""
    info_card_when_met: bool = False
    """Also return an info card when the pathway's criteria are met."""
    smart_app_url: str | None = None
    """A SMART app launch URL added to every card as a `smart` link."""
    log_level: str = "info"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    def knowledge_dir(self) -> Path:
        if self.cards_dir is not None:
            return self.cards_dir
        return Path(str(resources.files("cds_spine") / "cards"))
