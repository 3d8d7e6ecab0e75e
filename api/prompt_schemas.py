"""Bodies of the admin prompt routes. Requests forbid unknown fields and bound every text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from retrieval.prompt_template import DEFAULT_USER, MAX_DESCRIPTION_CHARS, MAX_SYSTEM_CHARS, MAX_USER_CHARS
from store.prompts import MAX_REASON_CHARS, Activation, StoredVersion

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptAddRequest(_Strict):
    name: str = Field(pattern=NAME)
    version: str = Field(pattern=VERSION)
    system: str = Field(min_length=1, max_length=MAX_SYSTEM_CHARS, description="must contain the abstention sentence")
    user: str = Field(default=DEFAULT_USER, max_length=MAX_USER_CHARS, description="{passages} and {question} once")
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class ActivateRequest(_Strict):
    version: str = Field(pattern=VERSION)
    force: bool = Field(
        default=False,
        description="required through the API: the evaluation gate runs from the CLI (`clearance prompts activate`)",
    )
    reason: str = Field(default="", max_length=MAX_REASON_CHARS, description="why; audited (erasably)")


class RollbackRequest(_Strict):
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)


class PromptVersionOut(BaseModel):
    name: str
    version: str
    id: str
    builtin: bool
    active: bool
    digest: str
    description: str
    created_at: str
    created_by: str

    @classmethod
    def of(cls, stored: StoredVersion, *, active: bool) -> Self:
        template = stored.template
        return cls(
            name=template.name,
            version=template.version,
            id=template.id,
            builtin=stored.builtin,
            active=active,
            digest=stored.digest,
            description=template.description,
            created_at=_iso(stored.created_at_us),
            created_by=stored.created_by,
        )


class PromptDetailOut(PromptVersionOut):
    system: str
    user: str

    @classmethod
    def detail(cls, stored: StoredVersion, *, active: bool) -> Self:
        summary = PromptVersionOut.of(stored, active=active).model_dump()
        return cls(**summary, system=stored.template.system, user=stored.template.user)


class PromptList(BaseModel):
    prompts: list[PromptVersionOut]


class PromptDiffOut(BaseModel):
    old: str
    new: str
    identical: bool = Field(description="both versions send the model the same text")
    diff: str = Field(description="unified diff, texts split after each sentence")


class ActivationOut(BaseModel):
    seq: int
    action: str
    version: str
    previous: str
    gate: str
    actor: str
    at: str

    @classmethod
    def of(cls, activation: Activation) -> Self:
        return cls(
            seq=activation.seq,
            action=activation.action,
            version=activation.version,
            previous=activation.previous,
            gate=activation.gate,
            actor=activation.actor,
            at=_iso(activation.at_us),
        )


class HistoryOut(BaseModel):
    active: str
    history: list[ActivationOut]


def _iso(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / 1_000_000, tz=UTC).isoformat()
