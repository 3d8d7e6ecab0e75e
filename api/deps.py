"""What routes may use: one Annotated dependency per capability, nothing else.

The composition root builds an :class:`ApiComponents` and hands it to
:func:`api.app.create_app`; routes never see settings or a service locator.
Authentication is a dependency too: every route but health declares the
caller it needs (any caller, or one holding the admin role).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from acl.dev.directory import Directory
from acl.dev.idp import DevIdentityProvider
from acl.principal import Principal
from api.limits import PRINCIPAL_SCOPE_KEY
from core.errors import AuthenticationError, AuthorizationError, NotFoundError
from ingest.explain import ExplainAccess
from ingest.service import IngestionService
from retrieval.answer import AnswerService
from retrieval.documents import DocumentReader
from store.conversations import ConversationStore, Owner
from store.prompts import PromptStore
from store.retention import Retention
from store.review_desk import FeedbackDesk, ReviewDesk, ReviewServices
from store.state import AuditTrail


class Authenticator(Protocol):
    """Turns a bearer token into a principal or raises AuthenticationError."""

    def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class DevIdentity:
    """The development directory and the provider that mints tokens for it (development mode only)."""

    directory: Directory
    idp: DevIdentityProvider
    suggestions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # sample user name -> questions


class Role(StrEnum):
    """What a route may require beyond authentication; each maps to an Entra app role name."""

    ADMIN = "admin"  # ingestion, explain-access
    AUDITOR = "auditor"  # reading and exporting the audit (reserved for the audit routes)
    REVIEWER = "reviewer"  # the human review queue (reserved for the review routes)


@dataclass(frozen=True, slots=True)
class RoleNames:
    """The Entra app role (the token's `roles` claim) that grants each :class:`Role`."""

    admin: str = "Clearance.Admin"
    auditor: str = "Clearance.Auditor"
    reviewer: str = "Clearance.Reviewer"

    def of(self, role: Role) -> str:
        return {Role.ADMIN: self.admin, Role.AUDITOR: self.auditor, Role.REVIEWER: self.reviewer}[role]


@dataclass(frozen=True, slots=True)
class HttpBounds:
    """Limits every request obeys before route code runs (see :mod:`api.limits`)."""

    max_body_bytes: int = 1_048_576
    body_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ApiComponents:
    """The capabilities the HTTP API is built from."""

    authenticator: Authenticator
    answers: AnswerService
    ingestion: IngestionService
    readiness: Callable[[], None]  # raises IndexUnavailableError when the index cannot answer
    roles: RoleNames = RoleNames()
    dev: DevIdentity | None = None
    explain: ExplainAccess | None = None  # admin explain-access routes
    audit: AuditTrail | None = None  # the audit store: auditor routes, and the check before an answer starts
    prompts: PromptStore | None = None  # versioned prompts: the admin prompt routes
    documents: DocumentReader | None = None  # cited passages and documents, read under the caller's filter
    review: ReviewServices | None = None  # feedback on answers and the review queue (needs the state store)
    conversations: ConversationStore | None = None  # each user's conversations (needs the state store)
    retention: Retention | None = None  # forget-user for admins (needs the state store)
    docs: bool = False  # serve /docs and /openapi.json
    bounds: HttpBounds = HttpBounds()


_bearer = HTTPBearer(auto_error=False, description="A Microsoft Entra ID access token (or a development token)")


_C = TypeVar("_C")


def components_of(request: Request) -> ApiComponents:
    components: ApiComponents = request.app.state.components
    return components


def _configured(component: _C | None, missing: str) -> _C:
    """A component this deployment may leave out: its routes answer 404 (``missing`` says why) without it."""
    if component is None:
        raise NotFoundError(missing)
    return component


def _answers(request: Request) -> AnswerService:
    return components_of(request).answers


def _ingestion(request: Request) -> IngestionService:
    return components_of(request).ingestion


def _dev_identity(request: Request) -> DevIdentity:
    return _configured(components_of(request).dev, "development mode is off")


def _prompts(request: Request) -> PromptStore:
    return _configured(components_of(request).prompts, "versioned prompts need the state store")


def _review_services(request: Request) -> ReviewServices:
    return _configured(components_of(request).review, "feedback and review need the state store")


def _feedback_desk(request: Request) -> FeedbackDesk:
    return _review_services(request).feedback


def _review_desk(request: Request) -> ReviewDesk:
    return _review_services(request).review


def _conversations(request: Request) -> ConversationStore:
    return _configured(components_of(request).conversations, "conversations need the state store")


def _maybe_conversations(request: Request) -> ConversationStore | None:
    return components_of(request).conversations


def _retention(request: Request) -> Retention:
    return _configured(components_of(request).retention, "retention needs the state store")


def owner_of(principal: Principal) -> Owner:
    """Whose conversations a caller reads and writes: the token's tenant and object id, nothing from the request."""
    return Owner(tenant_id=principal.tenant_id, object_id=principal.object_id)


def _audit(request: Request) -> AuditTrail:
    return _configured(components_of(request).audit, "the audit store is not configured")


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    validated = request.scope.get("state", {}).get(PRINCIPAL_SCOPE_KEY)
    if isinstance(validated, Principal):
        return validated  # the request-limits middleware validated this token before reading the body
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing bearer token")
    return components_of(request).authenticator.authenticate(credentials.credentials)


def require(role: Role) -> Callable[[Request, Principal], Principal]:
    """The one role check: a dependency that admits callers holding ``role``'s app role, 403 otherwise."""

    def holder(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        name = components_of(request).roles.of(role)
        if not principal.has_role(name):
            raise AuthorizationError(f"the {name} role is required")
        return principal

    return holder


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

AdminPrincipal = Annotated[Principal, Depends(require(Role.ADMIN))]
AuditorPrincipal = Annotated[Principal, Depends(require(Role.AUDITOR))]
ReviewerPrincipal = Annotated[Principal, Depends(require(Role.REVIEWER))]
Answers = Annotated[AnswerService, Depends(_answers)]
Audit = Annotated[AuditTrail, Depends(_audit)]
Conversations = Annotated[ConversationStore, Depends(_conversations)]
MaybeConversations = Annotated[ConversationStore | None, Depends(_maybe_conversations)]
RetentionDep = Annotated[Retention, Depends(_retention)]
FeedbackDeskDep = Annotated[FeedbackDesk, Depends(_feedback_desk)]
ReviewDeskDep = Annotated[ReviewDesk, Depends(_review_desk)]
Prompts = Annotated[PromptStore, Depends(_prompts)]
Ingestion = Annotated[IngestionService, Depends(_ingestion)]
DevIdentityDep = Annotated[DevIdentity, Depends(_dev_identity)]


def audit_ready(request: Request, principal: CurrentPrincipal) -> None:
    """Before an answer starts, the audit store must answer: a stream cannot turn into a 503 once it has begun.

    Runs after authentication (an unauthenticated caller still gets 401). An
    answer whose record cannot be written later still fails (the audit sink
    raises), but a streamed one has then already sent text: this check makes
    that a race with the store failing mid-answer, not the normal outcome.
    """
    audit = components_of(request).audit
    if audit is not None:
        audit.log.ping()
