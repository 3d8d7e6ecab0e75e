"""Fuzzing the HTTP API from its own OpenAPI schema (schemathesis 4), with valid and invalid tokens.

Every generated request (positive and negative inputs, for every operation in ``/openapi.json``,
search and chat more often) is sent through the ASGI app in process (no socket, loopback only)
with one of a fixed set of bearer tokens: valid development-IdP tokens for members, group members,
a guest, a caller with 150 groups, a group-overage caller, a token without ``acct``, admins of this
and another tenant, a caller of another tenant with the same object ids; and invalid ones (none,
garbage, another scheme, expired, another audience, another signing key, ``alg: none``, a tenant
that is not allowed, a non-GUID object id). Some generated bodies and queries are given realistic
values (questions the corpus answers, folders and documents inside, outside and through a link out
of the allowed root, names no OS accepts, directory users), so deep paths are reached. Checks:

* no response is a 5xx (an exception escaping the app counts as one);
* every non-2xx response is ``application/problem+json`` with ``type``, ``title`` and ``status``,
  and carries no internal text (tracebacks, exception class names, "qdrant", server paths) that
  the request did not itself contain;
* an invalid token never gets a 2xx from a ``/v1/`` route; ``/v1/me`` reads a valid one as the
  reference does (lower-case ids, guest when ``acct`` is absent, every group);
* every search hit and chat citation (JSON or event stream) names a document the caller may read:
  by the ACL stored on that document's chunks under the reference rule, and by the reference oracle
  computed from the corpus's manifests; no response carries text of a document the caller may not
  read;
* admin routes need the admin role; jobs are the admin's tenant's; a job is accepted only for a
  folder under the tenant's allowed root; explain-access never shows access to another tenant's or
  an outside document, and agrees with the reference on who can see what; whatever admins ingested,
  the index still holds exactly the corpus with the same ACLs at the end.

Bounded and deterministic: ``CLEARANCE_API_FUZZ_EXAMPLES`` cases (default 1500, 15-30 s on 2 cores),
derandomized, no example database, no shrinking; failures are reported once per distinct issue,
with the first request that showed it. Failures found so far are kept as named regressions below.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from acl.dev.idp import DevIdentityProvider
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from ingest.source import FilesystemSource
from tests.acl_reference import Caller, RefAcl, effective_acls, may_read
from tests.conftest import G_FINANCE, OTHER_TENANT, TENANT, write_acl, write_doc, write_users
from tests.test_acl_oracle import HashingEmbedder

ALICE, BOB, DENIED, GRACE, GUEST, LEAD, ADMIN = (f"b1000000-0000-4000-8000-00000000000{i}" for i in range(1, 8))
ENG, LEADS, ATLAS = (f"e1000000-0000-4000-8000-00000000000{i}" for i in range(1, 4))
FIN = G_FINANCE  # the conftest directory's overage user is a member of it
OVERAGE_OID = "a0000000-0000-4000-8000-000000000002"  # conftest.write_users: G_FINANCE and 230 more groups
OVERAGE_GROUPS = (G_FINANCE, *(f"d1000000-0000-4000-8000-{i:012d}" for i in range(230)))
DIRECTORY_ADMIN_OID = "a0000000-0000-4000-8000-000000000001"  # conftest.write_users: no groups
# The development directory's users, whom explain-access can answer about, as the reference sees them.
DIRECTORY_USERS = {
    OVERAGE_OID: Caller(TENANT, OVERAGE_OID, OVERAGE_GROUPS, label="directory user with 231 groups"),
    DIRECTORY_ADMIN_OID: Caller(TENANT, DIRECTORY_ADMIN_OID, label="directory admin without groups"),
}
ADMIN_ROLE = "Clearance.Admin"
_EXAMPLES = int(os.environ.get("CLEARANCE_API_FUZZ_EXAMPLES") or 1500)


def build_corpus(root: Path) -> Path:
    """Tenant-wide, group, deny, inherit, non-inheriting, guest-visible and no-manifest documents."""
    write_doc(root, "company/handbook.md", "# Handbook\n\nThe company picnic is on 14 June at Riverside Park.")
    write_acl(root / "company", allow=["tenant"])
    write_doc(root, "finance/q3.md", "# Q3 results\n\nQ3 revenue was 12.4 million euros, up 8 percent.")
    board = write_doc(root, "finance/board.md", "# Board pay\n\nBoard compensation totals 1.1 million euros.")
    write_acl(root / "finance", allow=[f"group:{FIN.upper()}"], deny=[f"user:{DENIED}"])
    write_acl(board, allow=[], deny=[f"user:{GRACE}"], inherit=True)
    write_doc(root, "eng/arch.md", "# Architecture\n\nThe robot fleet controller runs on Kubernetes.")
    launch = write_doc(root, "eng/launch.md", "# Atlas launch\n\nAtlas launches on 3 March with 40 robots.")
    write_acl(root / "eng", allow=[f"group:{ENG}"])
    write_acl(launch, allow=[f"group:{ATLAS}"], inherit=True)
    write_doc(root, "eng/leads/calibration.md", "# Calibration\n\nPerformance calibration closes on 30 May.")
    write_acl(root / "eng" / "leads", allow=[f"group:{LEADS}"], inherit=False)
    write_doc(root, "partners/welcome.txt", "Welcome, partners: the visitor badge office opens at 8.")
    write_acl(root / "partners", allow=[f"group:{ATLAS}", "tenant"], deny=[f"user:{BOB}"])
    write_doc(root, "drafts/secret.md", "# Draft\n\nThe unannounced acquisition target is Nimbus Robotics.")
    return root


# A phrase only each document contains: none may reach a caller who may not read that document.
MARKERS = {
    "company/handbook.md": "Riverside Park",
    "finance/q3.md": "12.4 million",
    "finance/board.md": "1.1 million",
    "eng/arch.md": "Kubernetes",
    "eng/launch.md": "40 robots",
    "eng/leads/calibration.md": "30 May",
    "partners/welcome.txt": "visitor badge",
    "drafts/secret.md": "Nimbus Robotics",
    "../outside/leak.md": "Zephyr payroll",  # outside the allowed root: nobody
}


# Questions each document answers: substituted into some generated bodies, so that answers cite documents.
QUESTIONS = (
    "When is the company picnic?",
    "What was Q3 revenue?",
    "How much is board compensation?",
    "What does the robot fleet controller run on?",
    "When does Atlas launch and with how many robots?",
    "When does performance calibration close?",
    "When does the visitor badge office open?",
    "What is the unannounced acquisition target?",
)


# -- tokens ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A bearer credential for one request; ``caller`` is who a valid token reads as (None: invalid)."""

    label: str
    header: str | None
    caller: Caller | None
    roles: tuple[str, ...] = ()


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def tokens(idp: DevIdentityProvider, stranger: DevIdentityProvider) -> list[Token]:
    def valid(label: str, caller: Caller, *, roles: tuple[str, ...] = (), **kwargs: Any) -> Token:
        minted = idp.mint(
            tenant_id=caller.tenant_id,
            object_id=caller.object_id,
            groups=kwargs.pop("token_groups", caller.groups),
            roles=roles,
            guest=caller.guest,
            **kwargs,
        )
        return Token(label, f"Bearer {minted}", caller, roles)

    now = int(time.time())
    crowd = (LEADS, *(f"f1000000-0000-4000-8000-{i:012d}" for i in range(150)))
    return [
        valid("finance-member", Caller(TENANT, ALICE, (FIN,))),
        valid("plain-member", Caller(TENANT, BOB)),
        valid("denied-finance-member", Caller(TENANT, DENIED, (FIN.upper(),))),
        valid("grace", Caller(TENANT, GRACE, (FIN, ENG))),
        valid("guest-in-atlas", Caller(TENANT, GUEST, (ATLAS,), guest=True)),
        valid("eng-lead", Caller(TENANT, LEAD, (ENG, LEADS))),
        valid("admin", Caller(TENANT, ADMIN, (ENG,)), roles=(ADMIN_ROLE,)),
        valid("other-tenant-same-ids", Caller(OTHER_TENANT, ALICE, (FIN, ENG, LEADS, ATLAS))),
        valid("other-tenant-admin", Caller(OTHER_TENANT, ADMIN, (ENG,)), roles=(ADMIN_ROLE,)),
        valid("150-groups", Caller(TENANT.upper(), LEAD.upper(), crowd)),
        # More than 200 groups: the token carries an overage claim, the directory resolves the groups.
        valid("group-overage", Caller(TENANT, OVERAGE_OID, OVERAGE_GROUPS), token_groups=(*OVERAGE_GROUPS, ATLAS)),
        # No acct claim: member or guest cannot be told, so the narrower (guest) reading.
        valid("no-acct-claim", Caller(TENANT, ALICE, (FIN,), guest=True), omit_claims=("acct",)),
        Token("no-token", None, None),
        Token("garbage", "Bearer garbage", None),
        Token("three-dots", "Bearer a.b.c", None),
        Token("basic-scheme", "Basic YWxpY2U6c2VjcmV0", None),
        Token("empty-bearer", "Bearer ", None),
        Token(
            "expired",
            f"Bearer {idp.mint(tenant_id=TENANT, object_id=ALICE, groups=(FIN,), lifetime_seconds=-3600)}",
            None,
        ),
        Token(
            "other-audience",
            f"Bearer {idp.mint(tenant_id=TENANT, object_id=ALICE, groups=(FIN,), extra_claims={'aud': 'api://x'})}",
            None,
        ),
        Token("other-signing-key", f"Bearer {stranger.mint(tenant_id=TENANT, object_id=ALICE, groups=(FIN,))}", None),
        Token(
            "alg-none",
            "Bearer "
            + _unsigned(
                {
                    "iss": f"https://dev-idp.clearance.invalid/{TENANT}/v2.0",
                    "aud": "api://clearance",
                    "tid": TENANT,
                    "oid": ALICE,
                    "groups": [FIN],
                    "acct": 0,
                    "iat": now,
                    "nbf": now,
                    "exp": now + 3600,
                }
            ),
            None,
        ),
        Token(
            "tenant-not-allowed",
            f"Bearer {idp.mint(tenant_id='0badbeef-0000-4000-8000-000000000000', object_id=ALICE, groups=(FIN,))}",
            None,
        ),
        Token(
            "oid-not-a-guid",
            f"Bearer {idp.mint(tenant_id=TENANT, object_id=ALICE, extra_claims={'oid': 'alice', 'sub': 'alice'})}",
            None,
        ),
    ]


# -- checks ---------------------------------------------------------------------------------------------------

PROBLEM_JSON = "application/problem+json"
_INTERNAL_MARKERS = (
    re.compile(r"Traceback"),
    re.compile(r"\b\w+(?:Error|Exception|Warning)\b"),
    re.compile(r"qdrant", re.IGNORECASE),
    re.compile(r"File \""),
    re.compile(r"\.py\b"),
    re.compile(r"site-packages"),
    re.compile(r"/(?:tmp|home|work|usr|var|root|etc)/"),
)


@dataclass
class Corpus:
    """What the index holds: per document path, its stored ACL and chunk ids; and the reference's ACLs."""

    root: Path
    stored: dict[str, tuple[RefAcl, set[str]]]
    reference: dict[str, RefAcl | None]


def load_corpus(runtime: Runtime, source: FilesystemSource) -> Corpus:
    stored: dict[str, tuple[RefAcl, set[str]]] = {}
    for path, state in runtime.index.document_states(tenant_id=TENANT, source_id=source.source_id).items():
        acl = runtime.index.stored_acl(state.doc_id)
        assert acl is not None, path
        stored[path] = (RefAcl(allow=acl.allow, deny=acl.deny), runtime.index.chunk_ids(state.doc_id))
    return Corpus(root=source.root, stored=stored, reference=effective_acls(source.root, tenant_id=TENANT))


def _internal_text(text: str, request_text: str) -> list[str]:
    """Markers of internal detail in ``text`` that the request itself did not bring."""
    found = []
    for marker in _INTERNAL_MARKERS:
        for match in marker.finditer(text):
            if match.group(0) not in request_text:
                found.append(match.group(0))
    return found


def check_problem(status: int, content_type: str, body: bytes, request_text: str) -> list[str]:
    issues = []
    if not content_type.startswith(PROBLEM_JSON):
        issues.append(f"status {status} with content type {content_type!r}, not {PROBLEM_JSON}")
    try:
        problem = json.loads(body)
    except ValueError:
        return [*issues, f"status {status} with a body that is not JSON: {body[:200]!r}"]
    if not isinstance(problem, dict) or not {"type", "title", "status"} <= set(problem):
        issues.append(f"problem without type, title and status: {problem!r}")
    elif problem["status"] != status:
        issues.append(f"problem status {problem['status']!r} differs from HTTP status {status}")
    leaked = _internal_text(body.decode("utf-8", "replace"), request_text)
    if leaked:
        issues.append(f"internal text in a {status} response: {leaked}")
    return issues


def sse_events(text: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data") or "null")))
    return events


def returned_documents(path: str, content_type: str, body: bytes) -> list[tuple[str, str]]:
    """(source, chunk_id) of every search hit or chat citation in a 2xx response."""
    if content_type.startswith("text/event-stream"):
        found = []
        for event, data in sse_events(body.decode("utf-8")):
            if event == "citations":
                found += [(c["source"], c["chunk_id"]) for c in data["citations"]]
        return found
    payload = json.loads(body)
    if path == "/v1/search":
        return [(hit["source"], hit["chunk_id"]) for hit in payload["results"]]
    if path == "/v1/chat":
        return [(c["source"], c["chunk_id"]) for c in payload["citations"]]
    return []


def check_content(corpus: Corpus, caller: Caller, body: bytes, request_text: str) -> list[str]:
    """No text of a document the caller may not read appears in a response to them."""
    text = body.decode("utf-8", "replace")
    return [
        f"{caller.label} got text of {path!r} ({marker!r}), which they may not read"
        for path, marker in MARKERS.items()
        if marker in text
        and marker not in request_text
        and not may_read(corpus.reference.get(path), source_tenant=TENANT, caller=caller)
    ]


def _without_own_words(path: str, body: bytes) -> bytes:
    """A conversation's titles and questions are what its owner typed (an earlier request's text): not checked."""
    if not path.startswith("/v1/conversations"):
        return body
    payload = json.loads(body)
    for conversation in payload.get("conversations", [payload]):
        conversation.pop("title", None)
        conversation["messages"] = [m for m in conversation.get("messages", []) if m.get("role") != "user"]
    return json.dumps(payload).encode()


def check_identity(caller: Caller, body: bytes) -> list[str]:
    """``/v1/me`` reads the token as the reference does (ids lower-case, guest when unsure, all groups)."""
    me = json.loads(body)
    expected = {
        "tenant_id": caller.tenant_id.lower(),
        "object_id": caller.object_id.lower(),
        "guest": caller.guest,
        "groups": len({group.lower() for group in caller.groups}),
    }
    got = {key: me.get(key) for key in expected}
    return [] if got == expected else [f"{caller.label}: /v1/me says {got}, expected {expected}"]


def check_visibility(corpus: Corpus, caller: Caller, documents: list[tuple[str, str]]) -> list[str]:
    issues = []
    for source, chunk_id in documents:
        if source not in corpus.stored:
            issues.append(f"{caller.label} got {source!r}, which is not a document of the corpus")
            continue
        acl, chunk_ids = corpus.stored[source]
        if chunk_id not in chunk_ids:
            issues.append(f"{caller.label} got chunk {chunk_id} as {source!r}, but it is not one of its chunks")
        if not may_read(acl, source_tenant=TENANT, caller=caller):
            issues.append(f"{caller.label} got {source!r}; its stored ACL does not let them read it: {acl}")
        if not may_read(corpus.reference.get(source), source_tenant=TENANT, caller=caller):
            issues.append(f"{caller.label} got {source!r}, which the reference says they may not read")
    return issues


# -- the fuzz test --------------------------------------------------------------------------------------------


ADMIN_PREFIXES = ("/v1/ingest", "/v1/admin")


def check_admin(case: schemathesis.Case[Any], token: Token, status: int, body: bytes, corpus: Corpus) -> list[str]:
    """Admin routes: the role is required; then what each route promises about the admin's tenant."""
    assert token.caller is not None
    if ADMIN_ROLE not in token.roles:
        return [f"{token.label} has no admin role but got {status}"]
    if case.path.startswith("/v1/admin/access"):
        return check_explain(case, token, body, corpus)
    if case.path.startswith(("/v1/ingest/jobs", "/v1/admin/jobs")):
        return check_jobs(case, token, status, body, corpus)
    return []


def check_explain(case: schemathesis.Case[Any], token: Token, body: bytes, corpus: Corpus) -> list[str]:
    """Explain access answers about the admin's own tenant's documents under its roots, and agrees with the
    reference about who can see what."""
    assert token.caller is not None
    payload = json.loads(body)
    query = case.query if isinstance(case.query, dict) else {}
    document, user = query.get("document"), query.get("user")
    about = DIRECTORY_USERS.get(user.lower()) if isinstance(user, str) else None
    if not isinstance(payload, dict):
        return [f"explain answered {payload!r:.200}"]
    issues = []
    if isinstance(document, str):
        manifests, index = payload.get("manifests") or {}, payload.get("index") or {}
        shows_access = (
            manifests.get("status") == "granted" or bool(manifests.get("allow")) or bool(index.get("indexed"))
        )
        if token.caller.tenant_id.lower() != TENANT and shows_access:
            issues.append(f"{token.label} (another tenant) was shown access to {document!r}")
        if "\x00" not in document:
            resolved = Path(os.path.realpath(corpus.root / document))  # an absolute document replaces the root
            if not resolved.is_relative_to(corpus.root) and shows_access:
                issues.append(f"{document!r} lies outside the tenant's roots, yet was explained as accessible")
        if about is not None and document in corpus.reference and "can_see" in payload:
            expected = may_read(corpus.reference[document], source_tenant=TENANT, caller=about)
            if payload["can_see"] != expected:
                issues.append(f"explain says {about.label} can_see={payload['can_see']} {document!r}")
    if about is not None and isinstance(payload.get("documents"), list):
        listed = {entry.get("path") for entry in payload["documents"]}
        readable = {path for path, acl in corpus.reference.items() if may_read(acl, source_tenant=TENANT, caller=about)}
        if not listed <= readable:
            issues.append(f"{about.label} is said to see {sorted(map(str, listed - readable))}, which they may not")
        if payload.get("offset") == 0 and payload.get("next_offset") is None and listed != readable:
            issues.append(f"{about.label} is said to see only {sorted(map(str, listed))}, not {sorted(readable)}")
    return issues


def check_jobs(case: schemathesis.Case[Any], token: Token, status: int, body: bytes, corpus: Corpus) -> list[str]:
    """Ingestion jobs are the caller's tenant's, and only that tenant's folders are ingested."""
    assert token.caller is not None
    payload = json.loads(body)
    jobs = payload.get("jobs", [payload]) if isinstance(payload, dict) else []
    issues = [
        f"{token.label} got a job of tenant {job.get('tenant_id')!r}"
        for job in jobs
        if job.get("tenant_id") != token.caller.tenant_id.lower()
    ]
    if status == 202:
        requested = case.body.get("path") if isinstance(case.body, dict) else None
        inside = (
            isinstance(requested, str)
            and "\x00" not in requested
            and Path(os.path.realpath(requested)).is_relative_to(corpus.root)
        )
        if token.caller.tenant_id.lower() != TENANT or not inside:
            issues.append(f"{token.label} may not ingest {requested!r}, yet the job was accepted")
    return issues


@pytest.fixture()
def fuzz_runtime(tmp_path: Path) -> Iterator[tuple[Runtime, FilesystemSource]]:
    corpus = build_corpus(tmp_path / "corpus")
    # A folder outside the allowed root, reachable through a link inside it: never to be ingested or shown.
    write_doc(tmp_path, "outside/leak.md", "# Outside\n\nThe outside folder holds the Zephyr payroll export.")
    write_acl(tmp_path / "outside", allow=["tenant"])
    (corpus / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    settings_ = Settings(
        mode=Mode.DEVELOPMENT,
        data_dir=tmp_path / "data",
        users_file=write_users(tmp_path / "users.json"),
        index=IndexSettings(location=":memory:"),
        ingest=IngestSettings(allowed_roots={TENANT: [corpus]}),
    )
    runtime = build_runtime(settings_, embedder=HashingEmbedder())
    source = FilesystemSource(root=corpus, tenant_id=TENANT)
    runtime.pipeline.run(source)
    yield runtime, source
    runtime.close()


def test_api_fuzz_no_5xx_problem_json_and_only_readable_documents(
    fuzz_runtime: tuple[Runtime, FilesystemSource], tmp_path: Path
) -> None:
    runtime, source = fuzz_runtime
    assert runtime.dev is not None
    corpus = load_corpus(runtime, source)
    assert set(corpus.stored) == set(corpus.reference), "the corpus was not ingested as the reference expects"
    app: FastAPI = build_api(runtime.settings, runtime=runtime)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Every operation, valid and invalid inputs; search and chat (where documents come back) more often.
    strategy = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        schema["/v1/search"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema["/v1/chat"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE),
    )
    credentials = tokens(
        runtime.dev.idp, DevIdentityProvider(key_dir=tmp_path / "stranger", audience="api://clearance")
    )
    preflight = TestClient(app, raise_server_exceptions=False)
    for token in credentials:
        if token.caller is not None and token.header is not None:
            response = preflight.get("/v1/me", headers={"Authorization": token.header})
            assert response.status_code == 200, f"valid token {token.label} refused: {response.text}"
    # Admin routes go mostly to the tenant's admin, sometimes to another tenant's, else to the drawn token.
    tenant_admin, other_admin = (
        next(t for t in credentials if t.roles and t.caller and (t.caller.tenant_id == TENANT) == ours)
        for ours in (True, False)
    )
    anonymous = next(token for token in credentials if token.header is None)
    # Folders an admin might name: the allowed root and inside it, ways out of it, and names no OS accepts.
    root = corpus.root
    folders = [
        str(root),
        str(root / "finance"),
        f"{root}/../{root.name}/eng",
        str(root / "escape"),
        str(root / "no-such-folder"),
        str(tmp_path),
        "/etc",
        "/",
        "~",
        "~no-such-user/documents",
        "relative/folder",
        f"{root}\x00",
        "a\x00b",
    ]
    # Documents and users an admin might ask about: real ones, ways out of the root, names no OS accepts.
    documents = [
        *corpus.stored,
        *corpus.stored,
        "drafts",
        str(root / "finance" / "q3.md"),
        "escape/leak.md",
        "../outside/leak.md",
        str(tmp_path / "outside" / "leak.md"),
        "finance/../../outside/leak.md",
        "finance/q3.md\x00",
        "~no-such-user/documents",
        "/etc/hostname",
    ]
    users = [
        *DIRECTORY_USERS,
        *DIRECTORY_USERS,
        OVERAGE_OID.upper(),
        ALICE,
        "alice",
        "00000000-0000-0000-0000-000000000000",
    ]
    failures: dict[str, tuple[str, int]] = {}  # issue -> (first request showing it, how many requests showed it)
    seen: Counter[str] = Counter()

    def fail(request: str, issues: list[str]) -> None:
        for issue in issues:
            first, count = failures.get(issue, (request, 0))
            failures[issue] = (first, count + 1)

    @settings(
        max_examples=_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=strategy,
        token=st.sampled_from(credentials),
        admin=st.sampled_from([tenant_admin, tenant_admin, tenant_admin, other_admin, None]),
        question=st.one_of(st.none(), st.sampled_from(QUESTIONS)),
        stream=st.booleans(),
        folder=st.one_of(st.none(), st.sampled_from(folders)),
        document=st.one_of(st.none(), st.sampled_from(documents)),
        user=st.one_of(st.none(), st.sampled_from(users)),
    )
    def exercise(
        case: schemathesis.Case[Any],
        token: Token,
        admin: Token | None,
        question: str | None,
        stream: bool,
        folder: str | None,
        document: str | None,
        user: str | None,
    ) -> None:
        if admin is not None and case.path.startswith(ADMIN_PREFIXES):
            token = admin  # admin routes mostly as an admin, or every request stops at 403
        if isinstance(case.body, dict):
            if question is not None and isinstance(case.body.get("query"), str):
                case.body["query"] = question
            if question is not None and isinstance(case.body.get("question"), str):
                case.body["question"] = question
                case.body["stream"] = stream
            if folder is not None and isinstance(case.body.get("path"), str):
                case.body["path"] = folder
        if isinstance(case.query, dict):
            if document is not None and isinstance(case.query.get("document"), str):
                case.query["document"] = document
            if user is not None and isinstance(case.query.get("user"), str):
                case.query["user"] = user
        case.headers.pop("Authorization", None)
        if token.header is not None:
            case.headers["Authorization"] = token.header
        request = f"{case.method} {case.formatted_path} as {token.label}, body {case.body!r:.300}"
        try:
            response = case.call()
        except Exception as exc:  # the in-process client re-raises what the app let escape (a 500 on a server)
            seen[f"{case.method} {case.path} raised"] += 1
            fail(request, [f"server error (500): the app raised {type(exc).__name__}: {exc}"])
            return
        if response.request.headers.get("Authorization") != token.header:
            # A negative case that drops the Authorization header: schemathesis removes it as it sends.
            token = anonymous
        status, body = response.status_code, response.content
        content_type = (response.headers.get("content-type") or [""])[0]
        request_text = json.dumps(
            [case.path, case.path_parameters, case.query, case.body, case.headers], default=str, ensure_ascii=False
        )
        seen[f"{case.method} {case.path} {status} {'valid' if token.caller else 'invalid'}"] += 1
        issues: list[str] = []
        if status >= 500:
            issues.append(f"server error {status}: {body[:300]!r}")
        if not 200 <= status < 300:
            issues += check_problem(status, content_type, body, request_text)
        elif token.caller is None and case.path.startswith("/v1/"):
            issues.append(f"an invalid token ({token.label}) got {status}")
        elif token.caller is not None:
            issues += check_content(corpus, token.caller, _without_own_words(case.path, body), request_text)
            if case.path == "/v1/me":
                issues += check_identity(token.caller, body)
            if case.path.startswith(ADMIN_PREFIXES):
                issues += check_admin(case, token, status, body, corpus)
            if case.path in ("/v1/search", "/v1/chat"):
                documents = returned_documents(case.path, content_type, body)
                seen[f"documents checked ({content_type.split(';')[0]})"] += len(documents)
                issues += check_visibility(corpus, token.caller, documents)
        fail(request, issues)

    exercise()
    runtime.ingestion.wait_idle()
    print("requests by operation, status and token:", dict(sorted(seen.items())))
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n".join(
        f"{issue} ({count} requests), e.g. {first}" for issue, (first, count) in failures.items()
    )
    # Not vacuous: callers did get documents back (and each was checked).
    assert sum(count for key, count in seen.items() if key.startswith("documents checked")) >= 20, seen
    # Whatever admins started, the index still holds exactly the corpus, with the same ACLs.
    assert load_corpus(runtime, source).stored == corpus.stored


# -- regressions: failures the fuzzer found, as named examples -------------------------------------------------


@pytest.mark.parametrize("folder", ["a\x00b", "{root}\x00", "~no-such-user/documents"])
def test_ingest_job_for_a_path_no_os_accepts_is_a_problem_not_a_500(
    fuzz_runtime: tuple[Runtime, FilesystemSource], folder: str
) -> None:
    """Found by the fuzzer: a NUL byte (ValueError) or an unknown ``~user`` (RuntimeError) escaped as a 500."""
    runtime, source = fuzz_runtime
    assert runtime.dev is not None
    client = TestClient(build_api(runtime.settings, runtime=runtime), raise_server_exceptions=False)
    token = runtime.dev.idp.mint(tenant_id=TENANT, object_id=ADMIN, roles=(ADMIN_ROLE,))
    response = client.post(
        "/v1/ingest/jobs",
        json={"path": folder.format(root=source.root)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert not check_problem(response.status_code, response.headers["content-type"], response.content, folder)
