"""The principal cache and the query-embedding cache, attacked as rules.

Real components throughout: tokens minted by the development identity provider
and validated by the real validator, the real embedder, the real index and app.
The only additions are counters around the real embedder, to see whether a
request reached it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from acl.dev.directory import Directory, DirectoryGroupResolver
from acl.dev.idp import DEV_ISSUER_TEMPLATE, DevIdentityProvider
from acl.groups import GroupResolver, UnavailableGroupResolver, UserDirectory
from acl.jwks import JwksKeys
from acl.principal import NarrowingReason, Principal
from acl.principal_cache import PrincipalCache
from acl.tokens import TokenPolicy, TokenValidator
from api.app import create_app
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import RetrievalSettings, Settings
from core.errors import AuthenticationError
from index.embedding import SentenceTransformerEmbedder
from index.query_cache import QueryEmbeddingCache
from ingest.jobs import JobStatus
from ingest.source import FilesystemSource
from tests.conftest import G1, G2, OTHER_TENANT, TENANT, ManualClock, write_acl, write_doc

AUDIENCE = "api://clearance"
USER = "b1000000-0000-4000-8000-000000000001"
OTHER_USER = "b1000000-0000-4000-8000-000000000002"
QUESTION = "When does the Atlas robot fleet launch?"

# -- principal cache ---------------------------------------------------------------


@pytest.fixture()
def idp(tmp_path: Path) -> DevIdentityProvider:
    return DevIdentityProvider(key_dir=tmp_path / "idp", audience=AUDIENCE)


def validator(
    idp: DevIdentityProvider, *, leeway: int = 60, groups: GroupResolver | UserDirectory | None = None
) -> TokenValidator:
    policy = TokenPolicy(
        audiences=(AUDIENCE,),
        issuer_templates=(DEV_ISSUER_TEMPLATE,),
        allowed_tenants=frozenset({TENANT, OTHER_TENANT}),
        leeway_seconds=leeway,
    )
    resolver = groups if groups is not None else UnavailableGroupResolver()
    return TokenValidator(policy=policy, keys=JwksKeys(url=idp.jwks_url), groups=resolver)


def test_cached_principal_is_not_served_for_another_token_of_the_same_user(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    in_g1 = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1])
    in_g2 = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G2], extra_claims={"jti": "second"})
    assert cache.authenticate(in_g1).groups == {G1}
    assert cache.authenticate(in_g1).groups == {G1}  # a hit
    assert cache.authenticate(in_g2).groups == {G2}  # same user id, other token: its own principal
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 2, 2)


def test_cached_principal_is_not_served_across_tenants(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    home = cache.authenticate(idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1]))
    away = cache.authenticate(idp.mint(tenant_id=OTHER_TENANT, object_id=USER, groups=[G1]))
    assert home.tenant_id == TENANT
    assert away.tenant_id == OTHER_TENANT
    assert home.access_keys().isdisjoint(away.access_keys())


def test_token_differing_only_in_its_signature_is_refused_while_the_original_is_cached(
    idp: DevIdentityProvider,
) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    token = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1])
    cache.authenticate(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(AuthenticationError):
        cache.authenticate(forged)


def test_cached_principal_is_not_served_once_the_token_has_expired(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp, leeway=0), ttl_seconds=3600)
    token = idp.mint(tenant_id=TENANT, object_id=USER, lifetime_seconds=2)
    assert cache.authenticate(token).object_id == USER
    assert cache.stats().entries == 1
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(AuthenticationError, match="expired"):
        cache.authenticate(token)


def test_token_accepted_only_by_the_leeway_is_never_cached(idp: DevIdentityProvider) -> None:
    """Expired 10 s ago: the validator's 60 s skew accepts it, the cache serves nothing past exp."""
    cache = PrincipalCache(inner=validator(idp, leeway=60), ttl_seconds=60)
    now = int(time.time())
    token = idp.mint(
        tenant_id=TENANT, object_id=USER, extra_claims={"iat": now - 100, "nbf": now - 100, "exp": now - 10}
    )
    cache.authenticate(token)
    cache.authenticate(token)
    assert cache.stats().entries == 0
    assert cache.stats().hits == 0


def test_entry_expires_at_exp_by_the_wall_clock(idp: DevIdentityProvider) -> None:
    wall = ManualClock(start=time.time())
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=3600, wall_clock=wall)
    token = idp.mint(tenant_id=TENANT, object_id=USER, lifetime_seconds=120)
    cache.authenticate(token)
    wall.now += 121
    cache.authenticate(token)  # the real clock still accepts it: the cache must not answer, the validator does
    assert cache.stats().hits == 0
    assert cache.stats().entries == 0  # and what the validator returned past exp is not stored either


def test_wall_clock_stepping_back_before_nbf_is_a_miss(idp: DevIdentityProvider) -> None:
    wall = ManualClock(start=time.time())
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=3600, wall_clock=wall)
    token = idp.mint(tenant_id=TENANT, object_id=USER)
    cache.authenticate(token)
    wall.now -= 3600
    cache.authenticate(token)
    assert cache.stats().hits == 0


def test_token_not_yet_valid_but_within_leeway_is_not_cached(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp, leeway=60), ttl_seconds=60)
    soon = int(time.time()) + 30
    cache.authenticate(idp.mint(tenant_id=TENANT, object_id=USER, extra_claims={"nbf": soon, "iat": soon}))
    assert cache.stats().entries == 0


def test_entry_is_revalidated_after_the_ttl(idp: DevIdentityProvider) -> None:
    clock = ManualClock()
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=30, clock=clock)
    token = idp.mint(tenant_id=TENANT, object_id=USER)
    cache.authenticate(token)
    clock.now += 29
    cache.authenticate(token)
    clock.now += 2
    cache.authenticate(token)
    assert (cache.stats().hits, cache.stats().misses) == (1, 2)


def test_narrowed_principal_is_not_cached(idp: DevIdentityProvider) -> None:
    """Group overage that cannot be resolved narrows the caller: that must not outlive the outage."""
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    overage = idp.mint(
        tenant_id=TENANT, object_id=USER, groups=[f"d2000000-0000-4000-8000-{i:012d}" for i in range(230)]
    )
    principal = cache.authenticate(overage)
    assert NarrowingReason.GROUP_RESOLUTION_FAILED in principal.narrowed
    cache.authenticate(overage)
    assert cache.stats().entries == 0


def test_resolved_overage_groups_are_cached_with_the_token(idp: DevIdentityProvider) -> None:
    groups = [f"d2000000-0000-4000-8000-{i:012d}" for i in range(230)]
    directory = Directory.load(_directory_file(idp, groups))
    cache = PrincipalCache(inner=validator(idp, groups=DirectoryGroupResolver(directory=directory)), ttl_seconds=60)
    token = idp.mint(tenant_id=TENANT, object_id=USER, groups=groups)
    assert len(cache.authenticate(token).groups) == 230
    assert len(cache.authenticate(token).groups) == 230
    assert cache.stats().hits == 1


def test_refused_token_is_never_cached(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    foreign = idp.mint(tenant_id="d3000000-0000-4000-8000-000000000003", object_id=USER)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            cache.authenticate(foreign)
    assert cache.stats().entries == 0


def test_non_numeric_exp_is_not_cached(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60)
    token = idp.mint(tenant_id=TENANT, object_id=USER, extra_claims={"exp": str(int(time.time()) + 600)})
    try:
        cache.authenticate(token)  # PyJWT reads exp with int(), so a numeric string passes validation
    except AuthenticationError:
        pytest.skip("this PyJWT refuses a string exp itself")
    assert cache.stats().entries == 0


def test_fractional_exp_is_cut_to_the_second_the_validator_uses(idp: DevIdentityProvider) -> None:
    wall = ManualClock(start=time.time())
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=3600, wall_clock=wall)
    exp = int(wall.now) + 600
    token = idp.mint(tenant_id=TENANT, object_id=USER, extra_claims={"exp": exp + 0.9})
    cache.authenticate(token)
    assert cache.stats().entries == 1
    wall.now = exp + 0.5
    cache.authenticate(token)
    assert cache.stats().hits == 0


def test_principal_cache_is_bounded_and_forgets_the_least_recent(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60, max_entries=2)
    first, second, third = (idp.mint(tenant_id=TENANT, object_id=USER, extra_claims={"jti": str(n)}) for n in range(3))
    cache.authenticate(first)
    cache.authenticate(second)
    cache.authenticate(first)  # first is now the most recent
    cache.authenticate(third)  # evicts second
    assert cache.stats().entries == 2
    hits = cache.stats().hits
    cache.authenticate(first)
    assert cache.stats().hits == hits + 1
    cache.authenticate(second)
    assert cache.stats().hits == hits + 1


def test_principal_cache_under_threads_gives_each_token_its_own_principal(idp: DevIdentityProvider) -> None:
    cache = PrincipalCache(inner=validator(idp), ttl_seconds=60, max_entries=3)
    users = [f"b1000000-0000-4000-8000-00000000001{n}" for n in range(6)]
    tokens = {user: idp.mint(tenant_id=TENANT, object_id=user) for user in users}
    wrong: list[str] = []

    def work(offset: int) -> None:
        for step in range(60):
            user = users[(offset + step) % len(users)]
            if cache.authenticate(tokens[user]).object_id != user:
                wrong.append(user)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert cache.stats().entries <= 3


def test_clear_forgets_every_principal_even_one_being_validated_meanwhile(idp: DevIdentityProvider) -> None:
    """clear() is what an operator calls when a signing key is revoked: nothing validated before it survives."""
    real = validator(idp)
    caches: list[PrincipalCache] = []

    class RevokedMidway:
        def authenticate(self, token: str) -> Principal:
            principal = real.authenticate(token)
            caches[0].clear()  # a revocation lands while this validation is in flight
            return principal

    straddling = PrincipalCache(inner=RevokedMidway(), ttl_seconds=60)
    caches.append(straddling)
    straddling.authenticate(idp.mint(tenant_id=TENANT, object_id=USER))
    assert straddling.stats().entries == 0

    cache = PrincipalCache(inner=real, ttl_seconds=60)
    token = idp.mint(tenant_id=TENANT, object_id=USER)
    cache.authenticate(token)
    cache.clear()
    cache.authenticate(token)
    assert (cache.stats().hits, cache.stats().misses) == (0, 2)


def _directory_file(idp: DevIdentityProvider, groups: Sequence[str]) -> Path:
    path = idp.jwks_path.parent / "users.json"
    users = [{"name": "u", "display_name": "U", "tenant": TENANT, "oid": USER, "groups": list(groups)}]
    path.write_text(json.dumps({"tenants": [{"id": TENANT, "name": "T"}], "groups": [], "users": users}))
    return path


# -- query-embedding cache -----------------------------------------------------------


class CountingEmbedder:
    """The real embedder, counting the query texts that reach it."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self._inner = inner
        self.queries: list[str] = []
        self.documents = 0

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.documents += len(texts)
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self._inner.embed_query(text)


def test_query_cache_hit_returns_the_same_vector_without_the_model(embedder: SentenceTransformerEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    cache = QueryEmbeddingCache(inner=counting, max_entries=8)
    first = cache.embed_query(QUESTION)
    second = cache.embed_query(QUESTION)
    assert second == first == embedder.embed_query(QUESTION)
    assert counting.queries == [QUESTION]
    cache.embed_query(QUESTION.lower())
    assert counting.queries == [QUESTION, QUESTION.lower()]  # keyed by the exact text: another spelling misses


def test_query_cache_hands_out_copies(embedder: SentenceTransformerEmbedder) -> None:
    cache = QueryEmbeddingCache(inner=embedder, max_entries=8)
    vector = cache.embed_query(QUESTION)
    expected = list(vector)
    vector[0] = 99.0
    cache.embed_query(QUESTION)[1] = -99.0
    assert cache.embed_query(QUESTION) == expected


def test_documents_are_never_cached(embedder: SentenceTransformerEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    cache = QueryEmbeddingCache(inner=counting, max_entries=8)
    cache.embed_documents([QUESTION])
    cache.embed_documents([QUESTION])
    assert counting.documents == 2
    assert cache.stats().entries == 0
    cache.embed_query(QUESTION)
    assert counting.queries == [QUESTION]  # a document embedding never answers a query


def test_query_cache_is_bounded_least_recent_first(embedder: SentenceTransformerEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    cache = QueryEmbeddingCache(inner=counting, max_entries=3)
    for text in ("a", "b", "c", "a", "d", "e"):
        cache.embed_query(text)
    assert cache.stats().entries == 3
    before = len(counting.queries)
    cache.embed_query("a")  # used recently: kept
    assert len(counting.queries) == before
    cache.embed_query("b")  # least recent: evicted
    assert len(counting.queries) == before + 1


def test_long_query_text_is_not_cached(embedder: SentenceTransformerEmbedder) -> None:
    cache = QueryEmbeddingCache(inner=embedder, max_entries=8, max_text_chars=20)
    cache.embed_query("x" * 21)
    assert cache.stats().entries == 0


def test_query_cache_under_threads_returns_each_text_its_own_vector(embedder: SentenceTransformerEmbedder) -> None:
    texts = ["travel per diem", "holiday calendar", "robot firmware", "board pay"]
    reference = {text: embedder.embed_query(text) for text in texts}
    cache = QueryEmbeddingCache(inner=embedder, max_entries=2)
    wrong: list[str] = []

    def work(offset: int) -> None:
        for step in range(12):
            text = texts[(offset + step) % len(texts)]
            if cache.embed_query(text) != reference[text]:
                wrong.append(text)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# -- through the API: caches never change what a caller may see ----------------------


def _trimming_corpus(root: Path) -> Path:
    write_doc(root, "g1/launch.md", "# Atlas launch\n\nThe Atlas robot fleet launches on 3 March with 40 robots.")
    write_acl(root / "g1", allow=[f"group:{G1}"])
    write_doc(root, "g2/launch.md", "# Atlas launch plan\n\nThe Atlas robot fleet launch moved to 9 April.")
    write_acl(root / "g2", allow=[f"group:{G2}"])
    return root


@pytest.fixture()
def counted_runtime(settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path) -> Iterator[Runtime]:
    rt = build_runtime(settings, embedder=CountingEmbedder(embedder))
    try:
        job = rt.pipeline.run(FilesystemSource(root=_trimming_corpus(tmp_path / "corpus"), tenant_id=TENANT))
        assert job.status is JobStatus.SUCCEEDED, job.errors
        yield rt
    finally:
        rt.close()


def _sources(client: TestClient, token: str, path: str = "/v1/search") -> set[str]:
    body = {"query": QUESTION, "top_k": 10} if path.endswith("search") else {"question": QUESTION}
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    if path.endswith("search"):
        return {hit["source"] for hit in response.json()["results"]}
    return {citation["source"] for citation in response.json()["citations"]}


def test_two_users_asking_the_same_question_get_their_own_trimmed_results(counted_runtime: Runtime) -> None:
    assert counted_runtime.dev is not None
    idp = counted_runtime.dev.idp
    client = TestClient(build_api(counted_runtime.settings, runtime=counted_runtime))
    in_g1 = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1])
    in_g2 = idp.mint(tenant_id=TENANT, object_id=OTHER_USER, groups=[G2])
    outsider = idp.mint(tenant_id=OTHER_TENANT, object_id=USER, groups=[G1, G2])
    try:
        for _ in range(2):
            assert _sources(client, in_g1) == {"g1/launch.md"}
            assert _sources(client, in_g2) == {"g2/launch.md"}
            assert _sources(client, outsider) == set()
        assert _sources(client, in_g2, "/v1/chat") <= {"g2/launch.md"}
        embedded = counted_runtime.embedder
        assert isinstance(embedded, CountingEmbedder)
        # Seven requests asked the question; the model embedded it once: the rest were cache hits.
        assert embedded.queries.count(QUESTION) == 1
    finally:
        client.close()


def test_query_cache_size_zero_embeds_every_request(
    settings: Settings, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    counting = CountingEmbedder(embedder)
    rt = build_runtime(
        settings.model_copy(update={"retrieval": RetrievalSettings(query_cache_size=0)}), embedder=counting
    )
    assert rt.dev is not None
    token = rt.dev.idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1])
    client = TestClient(build_api(rt.settings, runtime=rt))
    try:
        _sources(client, token)
        _sources(client, token)
        assert counting.queries.count(QUESTION) == 2
    finally:
        client.close()
        rt.close()


def test_cached_principals_through_the_api_keep_each_caller_to_their_own_documents(counted_runtime: Runtime) -> None:
    assert counted_runtime.dev is not None
    idp = counted_runtime.dev.idp
    cache = PrincipalCache(inner=counted_runtime.tokens, ttl_seconds=60)
    client = TestClient(create_app(replace(counted_runtime.api_components(), authenticator=cache)))
    in_g1 = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G1])
    in_g2 = idp.mint(tenant_id=TENANT, object_id=USER, groups=[G2])  # the same user, a token with another group
    try:
        for _ in range(3):
            assert _sources(client, in_g1) == {"g1/launch.md"}
            assert _sources(client, in_g2) == {"g2/launch.md"}
        assert cache.stats().hits == 4
    finally:
        client.close()
