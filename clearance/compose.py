"""The composition root: settings in, wired components out. Nothing else reads settings.

Each entry point builds only what it uses: ``clearance ingest`` needs the
embedder, the index and the pipeline, never the generator or the token
validator; ``clearance serve`` builds everything and hands the API its
capabilities through :class:`api.deps.ApiComponents`.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from acl.dev.directory import Directory, DirectoryGroupResolver
from acl.dev.idp import DEV_ISSUER_TEMPLATE, DevIdentityProvider
from acl.dev.suggestions import load_suggestions
from acl.graph import GraphGroupResolver, GraphMode, graph_session
from acl.group_cache import build_group_cache
from acl.groups import GroupResolver, GroupSource, UnavailableGroupResolver, UserDirectory, UserType
from acl.jwks import JwksKeys
from acl.principal import Principal
from acl.principal_cache import PrincipalCache, TokenAuthenticator
from acl.tokens import IssuerTemplate, TokenPolicy, TokenValidator, entra_issuers
from api.app import create_app
from api.deps import ApiComponents, DevIdentity, HttpBounds, RoleNames
from api.mounts import MountedApp
from clearance.retention_job import build_retention, build_schedule
from clearance.samples import sample_sources
from clearance.settings import GeneratorKind, GraphModeSetting, Mode, Settings
from index.edge import EdgeChunkIndex, EdgeTuning
from index.embedding import SentenceTransformerEmbedder, default_model_path, set_torch_threads
from index.embedding_stamp import CollectionStamp, EmbeddingStamp, FolderStamp, verify_embedding
from index.idf_sample import IdfSampling
from index.ports import ChunkIndex, Embedder, RetrievalMode
from index.qdrant import QdrantChunkIndex, open_client
from index.query_cache import QueryEmbeddingCache
from index.sparse import FusionParams
from ingest.explain import DevDirectoryAccess, ExplainAccess, UserResolver
from ingest.jobs import JobRecordStore
from ingest.parse import IsolatedParser, ParseLimits, parse_document
from ingest.pipeline import MB, IngestionPipeline
from ingest.runner import BackgroundJobs, JobRunner
from ingest.service import IngestionService
from retrieval.answer import AnswerService
from retrieval.audit import AuditSink
from retrieval.documents import DocumentReader
from retrieval.generation.admission import ModelAdmission
from retrieval.generation.base import AnswerGenerator
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.policy.loader import load_policy
from retrieval.policy.logs import install_log_redaction
from retrieval.prompts import PromptSource
from retrieval.relevance import RelevanceGate
from store.database import sqlite_url
from store.review_desk import ReviewServices, review_services
from store.state import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Indexing:
    """The ingestion side: embedder, index, job records and the pipeline over them."""

    embedder: Embedder
    index: ChunkIndex
    jobs: JobRecordStore
    pipeline: IngestionPipeline
    parser: IsolatedParser | None = None  # the parsing worker process, when parsing is isolated
    owned_store: Store | None = None  # the state store opened for the job records, when no one passed one

    def close(self) -> None:
        if self.parser is not None:
            self.parser.close()
        self.index.close()
        if self.owned_store is not None:
            self.owned_store.close()


@dataclass
class Identity:
    """Token validation, and in development mode the directory and the token-minting provider."""

    tokens: TokenValidator
    dev: DevIdentity | None
    # What the API authenticates with: ``tokens`` behind the principal cache unless it is off.
    authenticator: TokenAuthenticator


@dataclass
class Runtime:
    """Everything ``clearance serve`` runs; the roof's handle for the CLI, tests and benchmarks.

    Routes never see it: the API receives :class:`ApiComponents` built from it.
    """

    settings: Settings
    indexing: Indexing
    identity: Identity
    answers: AnswerService
    ingestion: IngestionService
    explain: ExplainAccess
    store: Store | None = None  # the state store (audit); None only for runtimes built by hand

    @property
    def embedder(self) -> Embedder:
        return self.indexing.embedder

    @property
    def index(self) -> ChunkIndex:
        return self.indexing.index

    @property
    def pipeline(self) -> IngestionPipeline:
        return self.indexing.pipeline

    @property
    def jobs(self) -> JobRecordStore:
        return self.indexing.jobs

    @property
    def tokens(self) -> TokenValidator:
        return self.identity.tokens

    @property
    def dev(self) -> DevIdentity | None:
        return self.identity.dev

    def api_components(self, settings: Settings | None = None) -> ApiComponents:
        """The API's capabilities under ``settings`` (default: the runtime's own).

        Tests and benchmarks pass other server settings (mode, docs, bounds) to
        serve the same loaded components differently.
        """
        settings = settings or self.settings
        return ApiComponents(
            authenticator=self.identity.authenticator,
            answers=self.answers,
            ingestion=self.ingestion,
            explain=self.explain,
            audit=self.store.trail if self.store is not None else None,
            prompts=self.store.prompts if self.store is not None else None,
            conversations=self.store.conversations if self.store is not None else None,
            retention=build_retention(self.settings, self.store) if self.store is not None else None,
            review=self._review_services(),
            documents=build_documents(self.settings, indexing=self.indexing, dev=self.identity.dev),
            readiness=self.indexing.index.ping,
            roles=RoleNames(
                admin=settings.auth.admin_role,
                auditor=settings.auth.auditor_role,
                reviewer=settings.auth.reviewer_role,
            ),
            # Token minting exists only in development mode, whatever else was built.
            dev=self.identity.dev if settings.mode is Mode.DEVELOPMENT else None,
            docs=settings.docs_enabled,
            bounds=HttpBounds(
                max_body_bytes=settings.server.max_body_bytes,
                body_timeout_seconds=settings.server.body_timeout_seconds,
            ),
        )

    def _review_services(self) -> ReviewServices | None:
        """Feedback and review over the state store; inspection reads the index under the asker's recorded keys."""
        if self.store is None:
            return None
        store = self.store
        return review_services(
            database=store.database, audit=store.audit, feedback=store.feedback, queue=store.review, index=self.index
        )

    def close(self) -> None:
        self.ingestion.close()
        self.indexing.close()
        if self.store is not None:
            self.store.close()  # last: stopping ingestion may still record a job's finish


def build_embedder(settings: Settings) -> Embedder:
    from clearance.settings import EmbeddingBackend

    config = settings.embedding
    # Also for onnx-int8: anything else on torch in this process (a reranker) keeps to the same thread budget.
    set_torch_threads(config.threads)
    source = config.model_path or default_model_path()
    if config.backend is EmbeddingBackend.ONNX_INT8:
        # Imported here so the torch backend never loads onnxruntime. The first start exports the model
        # (~20-30 s on 2 cores), every later one reuses the cached file.
        from index.onnx_embedding import OnnxEmbedder
        from index.onnx_export import ensure_int8_model

        model = ensure_int8_model(source=source, cache_root=config.model_cache_dir or settings.data_dir / "models")
        return OnnxEmbedder(model=model, threads=config.threads, query_threads=config.query_threads)
    return SentenceTransformerEmbedder(model_path=source, batch_size=config.batch_size)


def build_generator(settings: Settings, *, extractive: ExtractiveGenerator) -> AnswerGenerator:
    config = settings.generator
    if config.kind is GeneratorKind.LLAMA_CPP:
        from retrieval.generation.llama_cpp import LlamaCppGenerator

        if config.model_path is None:
            raise ValueError("CLEARANCE_GENERATOR__MODEL_PATH must name a GGUF file for the llama_cpp generator")
        return LlamaCppGenerator(
            model_path=config.model_path,
            threads=config.threads,
            max_tokens=config.max_tokens,
            warm_prompt=config.warm_prompt,
        )
    if config.kind is GeneratorKind.OPENAI:
        from retrieval.generation.openai_compatible import OpenAICompatibleGenerator

        if not config.model:
            raise ValueError("CLEARANCE_GENERATOR__MODEL must name the model for the openai generator")
        return OpenAICompatibleGenerator(
            base_url=config.base_url,
            api_key=config.api_key,
            model=config.model,
            timeout_seconds=config.timeout_seconds,
            max_tokens=config.max_tokens,
        )
    return extractive


def build_index(settings: Settings, *, dimension: int, fingerprint: str | None = None) -> ChunkIndex:
    """The configured index; with ``fingerprint``, refuses one filled by another embedder (None: no check,
    for callers that never embed, such as the sparse backfill)."""
    location = settings.index_location
    retrieval = settings.retrieval
    # Every chunk gets BM25 term weights whatever the mode, so switching modes needs no re-ingestion.
    fusion = FusionParams(
        mode=RetrievalMode(retrieval.mode.value),
        candidates=retrieval.fusion_candidates,
        rrf_k=retrieval.rrf_k,
        dense_weight=retrieval.dense_weight,
        sparse_weight=retrieval.sparse_weight,
    )
    index: ChunkIndex
    stamp: EmbeddingStamp
    if location.startswith("edge:"):
        # Qdrant's own engine in-process (HNSW, payload indexes); one process owns the shard.
        folder = Path(location.removeprefix("edge:"))
        tuning = EdgeTuning(idf_sampling=IdfSampling(max_walked=retrieval.idf_sample_above))
        index = EdgeChunkIndex(path=folder, dimension=dimension, fusion=fusion, tuning=tuning)
        stamp = FolderStamp(folder)
    else:
        if location != ":memory:" and not location.startswith(("http://", "https://")):
            Path(location).mkdir(parents=True, exist_ok=True)
        client = open_client(location, api_key=settings.index.api_key, timeout=settings.index.timeout_seconds)
        index = QdrantChunkIndex(
            client=client, collection=settings.index.collection, dimension=dimension, fusion=fusion
        )
        stamp = CollectionStamp(client=client, collection=settings.index.collection)
    index.ensure_schema()
    if fingerprint is not None:
        try:
            # Vectors of another embedder are not comparable: refuse rather than answer from noise.
            verify_embedding(stamp, fingerprint=fingerprint, index=index, where=location)
        except Exception:
            index.close()  # releases the edge shard's owner lock
            raise
    if retrieval.rerank_model_path is not None:
        from index.rerank import CrossEncoderReranker, RerankingIndex

        reranker = CrossEncoderReranker(model_path=retrieval.rerank_model_path)
        index = RerankingIndex(inner=index, reranker=reranker, candidates=retrieval.rerank_candidates)
    return index


def build_indexing(settings: Settings, *, embedder: Embedder | None = None, store: Store | None = None) -> Indexing:
    """What ingestion needs, and no more (no generator, no keys); opens the state store unless given one."""
    ensure_private_dir(settings.data_dir)
    embedder = embedder or build_embedder(settings)
    index = build_index(settings, dimension=embedder.dimension, fingerprint=embedder.fingerprint)
    # Job records live in the state store, so the API, `clearance jobs` and every worker read the same ones.
    owned_store: Store | None = None
    if store is None:
        store = owned_store = build_store(settings)
    jobs = store.jobs
    limits = parse_limits(settings)
    # Parsing processes get the cores the embedder's threads leave: at least one, at most four, since
    # past that the embedder bounds ingestion. Measured on 2 cores (benchmarks/ingestion.py): a worker
    # spends ~2 ms of CPU on a short file and ~20 ms on a sample office file, the int8 embedder ~9 and
    # ~50 ms; so one worker keeps ahead of one embedder thread, and a second worker only took CPU from it.
    workers = settings.ingest.parse_workers or min(4, max(1, (os.cpu_count() or 1) - settings.embedding.threads))
    isolated = IsolatedParser(limits, workers=workers) if settings.ingest.isolate_parsing else None
    pipeline = IngestionPipeline(
        index=index,
        embedder=embedder,
        jobs=jobs,
        parser=isolated or functools.partial(parse_document, limits=limits),
        max_chunk_chars=settings.ingest.max_chunk_chars,
        max_file_bytes=int(settings.ingest.max_file_mb * MB),
        max_chunks_per_file=settings.ingest.max_chunks_per_file,
        # In-process parsing holds the interpreter's lock: one parsing thread beside the embedder.
        parse_workers=workers if isolated else 1,
        embed_batch_chunks=settings.ingest.embed_batch_chunks,
    )
    return Indexing(
        embedder=embedder, index=index, jobs=jobs, pipeline=pipeline, parser=isolated, owned_store=owned_store
    )


def parse_limits(settings: Settings) -> ParseLimits:
    config = settings.ingest
    return ParseLimits(
        time_limit_s=config.parse_timeout_seconds,
        memory_limit_bytes=config.parse_memory_mb * MB,
        max_decompressed_bytes=int(config.max_decompressed_mb * MB),
        max_compression_ratio=config.max_compression_ratio,
        max_pages=config.max_pdf_pages,
        max_text_chars=config.max_text_chars,
    )


def ensure_private_dir(path: Path) -> None:
    """The data directory holds the index, job records, audit and keys: owner-only, whatever the umask."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def load_directory(settings: Settings) -> Directory:
    return Directory.load(settings.users_file)


def build_dev_identity(settings: Settings, *, directory: Directory | None = None) -> DevIdentity:
    """The development directory and its token-minting provider (development mode only)."""
    if settings.mode is not Mode.DEVELOPMENT:
        raise ValueError("development identities exist only in development mode (CLEARANCE_MODE=development)")
    return DevIdentity(
        directory=directory or load_directory(settings),
        idp=DevIdentityProvider(key_dir=settings.dev_idp_dir, audience=settings.auth.audiences[0]),
        # The sample question set beside the sample users: what the chat page suggests to each of them.
        suggestions=load_suggestions(settings.users_file.with_name("questions.json")),
    )


def build_identity(settings: Settings) -> Identity:
    auth = settings.auth
    dev: DevIdentity | None = None
    resolver: GroupResolver | UserDirectory = UnavailableGroupResolver()
    issuer_templates: tuple[str | IssuerTemplate, ...] = tuple(auth.issuer_templates) or entra_issuers(
        authority=auth.authority, v1_authority=auth.v1_authority
    )
    jwks_url = auth.jwks_url or f"{auth.authority.rstrip('/')}/common/discovery/v2.0/keys"
    allowed = set(auth.allowed_tenants)
    if settings.mode is Mode.DEVELOPMENT:
        dev = build_dev_identity(settings)
        resolver = DirectoryGroupResolver(directory=dev.directory)
        # Same validation code, different issuer and key set: that is all "development" changes.
        issuer_templates, jwks_url = (DEV_ISSUER_TEMPLATE,), dev.idp.jwks_url
        allowed = allowed or set(dev.directory.tenant_names)
    elif settings.graph.mode is not GraphModeSetting.OFF:
        resolver = build_graph_resolver(settings)
    if not allowed:
        raise ValueError(
            "CLEARANCE_AUTH__ALLOWED_TENANTS is empty: list the tenant ids whose tokens are accepted "
            "(for a local demo, run `clearance demo`)"
        )
    policy = TokenPolicy(
        audiences=tuple(auth.audiences),
        issuer_templates=issuer_templates,
        allowed_tenants=frozenset(allowed),
        leeway_seconds=auth.leeway_seconds,
        missing_acct_is_member=auth.trust_missing_acct,
        required_scopes=tuple(auth.required_scopes),
        app_roles=frozenset(auth.app_roles),
        app_client_ids=frozenset(auth.app_client_ids),
        group_source=GroupSource(auth.group_source.value),
    )
    keys = JwksKeys(
        url=jwks_url,
        ca_file=auth.ca_file,
        lifespan_seconds=auth.jwks_lifespan_seconds,
        cooldown_seconds=auth.jwks_cooldown_seconds,
        max_age_seconds=auth.jwks_max_age_seconds,
    )
    groups = build_group_cache(
        inner=resolver,
        ttl_seconds=auth.group_cache_ttl_seconds,
        redis_url=auth.redis_url,
        key_prefix=auth.redis_key_prefix,
    )
    validator = TokenValidator(policy=policy, keys=keys, groups=groups)
    # Never longer than the group cache: a principal holds directory answers (overage, guest status).
    ttl = min(auth.principal_cache_ttl_seconds, auth.group_cache_ttl_seconds)
    authenticator: TokenAuthenticator = (
        PrincipalCache(inner=validator, ttl_seconds=ttl, max_entries=auth.principal_cache_max_entries)
        if ttl > 0
        else validator
    )
    return Identity(tokens=validator, dev=dev, authenticator=authenticator)


def build_graph_resolver(settings: Settings) -> GraphGroupResolver:
    """Microsoft Graph through msal, app-only or on behalf of the caller."""
    graph, auth = settings.graph, settings.auth
    if not graph.client_id or not graph.client_secret.get_secret_value():
        raise ValueError("CLEARANCE_GRAPH__CLIENT_ID and CLEARANCE_GRAPH__CLIENT_SECRET are needed for Graph")
    return GraphGroupResolver(
        client_id=graph.client_id,
        client_credential=graph.client_secret.get_secret_value(),
        mode=GraphMode(graph.mode.value),
        authority=auth.authority,
        graph_url=graph.url,
        graph_scope=graph.scope,
        security_enabled_only=graph.security_enabled_only,
        session=graph_session(ca_file=auth.ca_file, timeout_seconds=graph.timeout_seconds),
        timeout_seconds=graph.timeout_seconds,
        retry_budget_seconds=graph.retry_budget_seconds,
        page_size=graph.page_size,
        max_pages=graph.max_pages,
        max_cached_users=graph.max_cached_users,
    )


def build_answers(
    settings: Settings, *, indexing: Indexing, audit: AuditSink, prompts: PromptSource | None = None
) -> AnswerService:
    """The answer service; ``audit``: where its records go (the store's sink; default: a JSON lines file);
    ``prompts``: each tenant's active prompt version (the store's; None: the built-in default for everyone)."""
    extractive = ExtractiveGenerator()
    embedder = indexing.embedder
    if settings.retrieval.query_cache_size > 0:
        # Query vectors depend on the text alone and carry no ACL (trimming happens in the index query):
        # safe to share between callers. Ingestion keeps the uncached embedder.
        embedder = QueryEmbeddingCache(inner=embedder, max_entries=settings.retrieval.query_cache_size)
    # A policy file that cannot be read or validated stops start-up: no answer without the configured rules.
    policy = load_policy(settings.policy.path)
    install_log_redaction(policy.redact)  # personal data in questions never reaches a log handler
    return AnswerService(
        index=indexing.index,
        embedder=embedder,
        generator=build_generator(settings, extractive=extractive),
        fallback=extractive,
        top_k=settings.retrieval.top_k,
        min_score=settings.retrieval.min_score,
        prompts=prompts,
        audit=audit,
        policy=policy,
        gate=relevance_gate(settings),
        admission=model_admission(settings),
        # Extractive answers read nothing: only a model's passages are cut to the sentences it needs.
        passage_chars=0 if settings.generator.kind is GeneratorKind.EXTRACTIVE else settings.generator.passage_chars,
    )


def model_admission(settings: Settings) -> ModelAdmission | None:
    """The fair, bounded line in front of a local model (one llama.cpp context: one answer at a time).

    Extractive answers need no line; a hosted model's server has its own limits.
    """
    config = settings.generator
    if config.kind is not GeneratorKind.LLAMA_CPP:
        return None
    return ModelAdmission(max_waiting=config.queue_max_waiting, max_wait_seconds=config.queue_max_wait_seconds)


def relevance_gate(settings: Settings) -> RelevanceGate | None:
    """The gate of the configured retrieval mode (its calibrated floor unless the setting gives one); None: off."""
    floor = settings.retrieval.relevance_floor
    if floor is not None and floor <= -1.0:
        return None
    mode = RetrievalMode(settings.retrieval.mode.value)
    return RelevanceGate.calibrated(mode, floor=floor, reranked=settings.retrieval.rerank_model_path is not None)


def allowed_roots(settings: Settings, *, directory: Directory | None = None) -> dict[str, list[Path]]:
    """Folders each tenant's admins may ingest: the setting, or in development each sample tenant's corpus."""
    if settings.ingest.allowed_roots or settings.mode is not Mode.DEVELOPMENT:
        return settings.ingest.allowed_roots
    sources = sample_sources(directory or load_directory(settings))
    return {tenant_id: [source.root] for tenant_id, source in sources.items()}


def build_ingestion(settings: Settings, *, indexing: Indexing, directory: Directory | None = None) -> IngestionService:
    return IngestionService(
        runner=build_job_runner(settings, indexing=indexing),
        jobs=indexing.jobs,
        allowed_roots=allowed_roots(settings, directory=directory),
    )


def build_job_runner(settings: Settings, *, indexing: Indexing) -> JobRunner:
    """Admin jobs on a thread of this process (the default), or on a Redis queue for `clearance worker`s."""
    if not settings.queue.redis_url:
        return BackgroundJobs(pipeline=indexing.pipeline, jobs=indexing.jobs)
    from clearance.worker import queued_runner  # the queue's wiring; it imports this module

    return queued_runner(settings, jobs=indexing.jobs)


def build_runtime(
    settings: Settings, *, embedder: Embedder | None = None, prompts: PromptSource | None = None
) -> Runtime:
    """Everything the server runs; ``prompts`` replaces the store's per-tenant prompt versions (the evaluation
    of a candidate version answers every question with it)."""
    store = build_store(settings)  # first: a server whose audit cannot be written does not start
    indexing = build_indexing(settings, embedder=embedder, store=store)
    identity = build_identity(settings)
    directory = identity.dev.directory if identity.dev else None
    return Runtime(
        settings=settings,
        indexing=indexing,
        identity=identity,
        answers=build_answers(
            settings, indexing=indexing, audit=store.audit_sink, prompts=prompts or store.prompt_source
        ),
        ingestion=build_ingestion(settings, indexing=indexing, directory=directory),
        explain=build_explain(settings, indexing=indexing, directory=directory),
        store=store,
    )


def store_url(settings: Settings) -> str:
    """The state store's URL: the setting, or a SQLite file in the data directory."""
    return settings.store.url.get_secret_value() or sqlite_url(settings.data_dir / "state.db")


def build_store(settings: Settings, *, migrate: bool | None = None) -> Store:
    """The state store (audit, job records), its schema migrated unless ``migrate`` (or the setting) says not."""
    ensure_private_dir(settings.data_dir)
    config = settings.store
    return open_store(
        store_url(settings),
        schema=config.schema_name,
        migrate=config.migrate if migrate is None else migrate,
        connect_timeout_seconds=config.connect_timeout_seconds,
        pool_size=config.pool_size,
    )


def build_documents(settings: Settings, *, indexing: Indexing, dev: DevIdentity | None = None) -> DocumentReader:
    """Cited passages and documents for callers who may read them; originals only from today's allowed roots."""
    return DocumentReader(
        index=indexing.index,
        allowed_roots=allowed_roots(settings, directory=dev.directory if dev is not None else None),
        max_file_bytes=int(settings.ingest.max_file_mb * MB),
        max_chunks=settings.ingest.max_chunks_per_file,
    )


def build_explain(settings: Settings, *, indexing: Indexing, directory: Directory | None = None) -> ExplainAccess:
    """Explain-access over the index. Users (groups, guest or member) come from the development directory
    in development mode, from Microsoft Graph (app-only) in production when it is configured; otherwise
    explaining by object id is refused with a clear error rather than guessing a principal."""
    access = DevDirectoryAccess(directory) if directory is not None else None
    users: UserResolver | None = access.principal if access is not None else None
    if users is None and settings.graph.mode is GraphModeSetting.APP_ONLY:
        users = _graph_users(build_graph_resolver(settings))
    return ExplainAccess(
        index=indexing.index,
        allowed_roots=allowed_roots(settings, directory=directory),
        directory=access,
        users=users,
    )


def _graph_users(graph: GraphGroupResolver) -> UserResolver:
    """A user's principal as Microsoft Graph sees it now (transitive groups, member or guest)."""

    def principal(tenant_id: str, object_id: str) -> tuple[Principal, dict[str, str]]:
        groups = graph.member_groups(tenant_id, object_id)
        guest = graph.user_type(tenant_id, object_id) is UserType.GUEST
        found = Principal(tenant_id=tenant_id, object_id=object_id, groups=groups, guest=guest)
        return found, dict.fromkeys(found.access_keys(), "graph")

    return principal


def build_api(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The HTTP app; pass ``runtime`` to share already-loaded components (tests, benchmarks)."""
    if runtime is not None:
        return create_app(runtime.api_components(settings), mounts=api_mounts(settings, runtime=runtime))
    owned = build_runtime(settings)
    # `clearance serve` enforces retention on a schedule: started with the app, stopped before the store closes.
    schedule = build_schedule(settings, build_retention(settings, owned.store)) if owned.store is not None else None

    def shutdown() -> None:
        if schedule is not None:
            schedule.stop()
        owned.close()

    return create_app(
        owned.api_components(),
        on_shutdown=shutdown,
        on_startup=schedule.start if schedule is not None else None,
        mounts=api_mounts(settings, runtime=owned),
    )


def api_mounts(settings: Settings, *, runtime: Runtime) -> tuple[MountedApp, ...]:
    """What the HTTP API serves beside its routes, over the same runtime: the MCP endpoint at /mcp, unless off."""
    if not settings.mcp.enabled:
        return ()
    from clearance.mcp_server import mounted_mcp  # the MCP SDK loads only in processes that serve it

    return (mounted_mcp(runtime, settings=settings),)
