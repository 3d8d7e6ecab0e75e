"""The composition root: settings in, wired components out. Nothing else reads settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from acl.devidp import DEV_ISSUER_TEMPLATE, DevIdentityProvider
from acl.directory import Directory, DirectoryGroupResolver
from acl.groups import CachedGroupResolver, GroupResolver, UnavailableGroupResolver
from acl.jwks import JwksKeys
from acl.tokens import TokenPolicy, TokenValidator
from clearance.settings import GeneratorKind, Mode, Settings
from ingest.jobs import JobStore
from ingest.parse import parse_document
from ingest.pipeline import IngestionPipeline
from ingest.runner import BackgroundJobs
from retrieval.answer import AnswerService
from retrieval.audit import JsonlAuditSink
from retrieval.embedding import Embedder, SentenceTransformerEmbedder, default_model_path
from retrieval.generation import ExtractiveGenerator, Generator
from retrieval.index import ChunkIndex, open_client

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    embedder: Embedder
    index: ChunkIndex
    jobs: JobStore
    pipeline: IngestionPipeline
    background: BackgroundJobs
    answers: AnswerService
    tokens: TokenValidator
    directory: Directory | None
    dev_idp: DevIdentityProvider | None

    def close(self) -> None:
        self.background.stop()
        self.index.close()


def build_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(
        model_path=settings.embedding.model_path or default_model_path(),
        threads=settings.embedding.threads,
        batch_size=settings.embedding.batch_size,
    )


def build_generator(settings: Settings) -> Generator:
    config = settings.generator
    if config.kind is GeneratorKind.LLAMA_CPP:
        from retrieval.llm_generators import LlamaCppGenerator

        if config.model_path is None:
            raise ValueError("CLEARANCE_GENERATOR__MODEL_PATH must name a GGUF file for the llama_cpp generator")
        return LlamaCppGenerator(model_path=config.model_path, threads=config.threads, max_tokens=config.max_tokens)
    if config.kind is GeneratorKind.OPENAI:
        from retrieval.llm_generators import OpenAICompatibleGenerator

        if not config.model:
            raise ValueError("CLEARANCE_GENERATOR__MODEL must name the model for the openai generator")
        return OpenAICompatibleGenerator(
            base_url=config.base_url,
            api_key=config.api_key,
            model=config.model,
            timeout_seconds=config.timeout_seconds,
            max_tokens=config.max_tokens,
        )
    return ExtractiveGenerator()


def build_index(settings: Settings, *, dimension: int) -> ChunkIndex:
    location = settings.index_location
    if location != ":memory:" and not location.startswith(("http://", "https://")):
        Path(location).mkdir(parents=True, exist_ok=True)
    index = ChunkIndex(
        client=open_client(location, api_key=settings.index.api_key, timeout=settings.index.timeout_seconds),
        collection=settings.index.collection,
        dimension=dimension,
    )
    index.ensure_schema()
    return index


def build_token_validator(settings: Settings) -> tuple[TokenValidator, Directory | None, DevIdentityProvider | None]:
    auth = settings.auth
    directory: Directory | None = None
    dev_idp: DevIdentityProvider | None = None
    resolver: GroupResolver = UnavailableGroupResolver()  # Microsoft Graph resolution is configured later
    issuer_templates = tuple(auth.issuer_templates)
    jwks_url = auth.jwks_url
    allowed = set(auth.allowed_tenants)
    if settings.mode is Mode.DEVELOPMENT:
        directory = Directory.load(settings.users_file)
        dev_idp = DevIdentityProvider(key_dir=settings.dev_idp_dir, audience=auth.audiences[0])
        resolver = DirectoryGroupResolver(directory=directory)
        # Same validation code, different issuer and key set: that is all "development" changes.
        issuer_templates, jwks_url = (DEV_ISSUER_TEMPLATE,), dev_idp.jwks_url
        allowed = allowed or set(directory.tenant_names)
    policy = TokenPolicy(
        audiences=tuple(auth.audiences),
        issuer_templates=issuer_templates,
        allowed_tenants=frozenset(allowed),
        leeway_seconds=auth.leeway_seconds,
    )
    keys = JwksKeys(url=jwks_url)
    cached = CachedGroupResolver(inner=resolver, ttl_seconds=auth.group_cache_ttl_seconds)
    return TokenValidator(policy=policy, keys=keys, groups=cached), directory, dev_idp


def build_runtime(settings: Settings, *, embedder: Embedder | None = None) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or build_embedder(settings)
    index = build_index(settings, dimension=embedder.dimension)
    jobs = JobStore(root=settings.jobs_dir)
    pipeline = IngestionPipeline(
        index=index,
        embedder=embedder,
        jobs=jobs,
        parser=parse_document,
        max_chunk_chars=settings.ingest.max_chunk_chars,
    )
    answers = AnswerService(
        index=index,
        embedder=embedder,
        generator=build_generator(settings),
        top_k=settings.retrieval.top_k,
        min_score=settings.retrieval.min_score,
        audit=JsonlAuditSink(path=settings.data_dir / "audit" / "answers.jsonl"),
    )
    tokens, directory, dev_idp = build_token_validator(settings)
    return Runtime(
        settings=settings,
        embedder=embedder,
        index=index,
        jobs=jobs,
        pipeline=pipeline,
        background=BackgroundJobs(pipeline=pipeline, jobs=jobs),
        answers=answers,
        tokens=tokens,
        directory=directory,
        dev_idp=dev_idp,
    )
