"""Request bodies of the partner API. Unknown fields are rejected, sizes are bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from freezedesk.domain.restrictions import Disposition

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN, description="The exchange's own account id")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FreezeRequest(Body):
    reason_code: str = Field(max_length=64, examples=["SEC_ACCOUNT_TAKEOVER"])
    scopes: list[str] | None = Field(
        default=None, max_length=11,
        description="Scopes or presets; defaults to the reason's default scopes",
        examples=[["withdrawal_hold"]],
    )
    expires_at: AwareDatetime | None = Field(default=None, description="UTC; must be in the future")
    legal_basis: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=4000, description="Internal; never shown to the customer")


class LiftRequestBody(Body):
    reason: str = Field(min_length=1, max_length=4000)
    legal_reference: str | None = Field(default=None, max_length=500)


class PermanentRequest(Body):
    disposition: Disposition
    note: str = Field(min_length=1, max_length=4000)


class TransitionRequest(Body):
    event: str = Field(min_length=1, max_length=40)


class WebhookRequest(Body):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)


class PermissionQuery(Body):
    account_id: AccountId
    action: str = Field(max_length=16)
    reduce_only: bool = False


class BatchCheckRequest(Body):
    checks: list[PermissionQuery] = Field(min_length=1, max_length=1000)


class AccountProfile(Body):
    locale: Literal["ja", "en"] | None = None
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)
    # What sanctions screening uses; sending or changing any of it screens the holder at once.
    legal_name: str | None = Field(default=None, max_length=400, description="Full legal name, any script")
    entity_type: Literal["person", "organisation"] = "person"
    birth_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$", description="Nationality, ISO alpha-2")
