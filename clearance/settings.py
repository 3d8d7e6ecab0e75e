"""All settings, in one class built at start-up and passed down.

Every field is an environment variable with the ``CLEARANCE_`` prefix; nested
sections use ``__``, e.g. ``CLEARANCE_INDEX__LOCATION`` or
``CLEARANCE_AUTH__AUDIENCES='["api://clearance"]'``. The README lists them all.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from acl.principal import normalize_id

REPO_ROOT = Path(__file__).resolve().parents[1]


class Mode(StrEnum):
    DEVELOPMENT = "development"  # the bundled development identity provider is trusted
    PRODUCTION = "production"  # only the configured issuers (Entra ID) are trusted: the default


# API keys that documentation and examples use; a server reachable with one of them is open to anyone.
PLACEHOLDER_KEYS = frozenset({"change-me", "changeme", "change_me", "secret", "password", "qdrant", "example"})


class GeneratorKind(StrEnum):
    EXTRACTIVE = "extractive"
    LLAMA_CPP = "llama_cpp"
    OPENAI = "openai"


class IndexSettings(BaseModel):
    location: str = Field(
        default="",
        description="':memory:', a folder (qdrant-client local mode), 'edge:<folder>' (Qdrant's in-process engine), "
        "or a Qdrant server URL; empty: edge:<data_dir>/edge",
    )
    api_key: str | None = Field(default=None, description="Qdrant server API key")
    collection: str = "clearance_chunks"
    timeout_seconds: float = 10.0

    @model_validator(mode="after")
    def _server_needs_a_real_key(self) -> IndexSettings:
        """Whoever reaches a Qdrant server with its key bypasses every ACL: refuse placeholders."""
        if not self.location.startswith(("http://", "https://")):
            return self
        key = (self.api_key or "").strip()
        if key.lower() in PLACEHOLDER_KEYS:
            raise ValueError("CLEARANCE_INDEX__API_KEY is a placeholder; set the Qdrant server's real API key")
        if not key and not is_loopback_host(urlparse(self.location).hostname or ""):
            raise ValueError("CLEARANCE_INDEX__API_KEY is required for a Qdrant server that is not on loopback")
        return self


class EmbeddingBackend(StrEnum):
    # The same all-MiniLM-L6-v2 weights exported once to int8 ONNX and run by onnxruntime: 2-3x the chunks/s of
    # torch on a CPU core, cosine >= 0.99 to fp32, SciFact nDCG@10 within 0.001 (benchmarks/embedding.py).
    ONNX_INT8 = "onnx-int8"
    TORCH = "torch"  # sentence-transformers in fp32: the reference


class EmbeddingSettings(BaseModel):
    backend: EmbeddingBackend = Field(
        default=EmbeddingBackend.ONNX_INT8,
        description="onnx-int8 or torch; an index keeps the vectors of one backend and refuses to open under another",
    )
    model_path: Path | None = Field(default=None, description="sentence-transformers model folder; empty: bundled")
    threads: int = Field(default=1, ge=1, description="intra-op threads for document batches (ingestion)")
    query_threads: int = Field(default=1, ge=1, description="onnx-int8: intra-op threads for one query")
    batch_size: int = Field(default=32, ge=1, description="torch: texts per forward pass (onnx-int8: one at a time)")
    model_cache_dir: Path | None = Field(
        default=None, description="onnx-int8: where the exported model is kept; empty: <data_dir>/models"
    )


class IngestSettings(BaseModel):
    max_chunk_chars: int = Field(default=1000, ge=200, le=8000)
    default_tenant: str | None = Field(default=None, description="tenant id used when --tenant is omitted")
    allowed_roots: dict[str, list[Path]] = Field(
        default_factory=dict,
        description="per tenant id, the folders its admins may ingest through the API (the CLI may ingest any "
        "folder); empty: in development mode each sample tenant's corpus folder, in production none",
    )
    max_file_mb: float = Field(default=100.0, gt=0, description="files larger than this are a per-file error")
    max_chunks_per_file: int = Field(default=5000, ge=1)
    parse_timeout_seconds: float = Field(default=120.0, gt=0, description="time one file may take to parse")
    parse_memory_mb: int = Field(default=2048, ge=256, description="address space of each parsing worker")
    isolate_parsing: bool = Field(
        default=True, description="parse in worker processes under the time and memory limits (off: in-process)"
    )
    parse_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="parsing worker processes, each under the time and memory limits; empty: the cores left "
        "after the embedder's threads, 1 to 4",
    )
    embed_batch_chunks: int = Field(
        default=64, ge=1, le=4096, description="chunks of several files embedded in one call during ingestion"
    )
    max_decompressed_mb: float = Field(default=200.0, gt=0, description="uncompressed size of an Office/ODF package")
    max_compression_ratio: float = Field(default=100.0, gt=1, description="for packages declaring over 10 MB")
    max_pdf_pages: int = Field(default=2000, ge=1)
    max_text_chars: int = Field(default=10_000_000, ge=1000, description="text one document may yield")

    @field_validator("default_tenant")
    @classmethod
    def _tenant_is_a_guid(cls, value: str | None) -> str | None:
        return None if value is None else normalize_id(value, "tenant")

    @field_validator("allowed_roots")
    @classmethod
    def _roots_by_tenant(cls, value: dict[str, list[Path]]) -> dict[str, list[Path]]:
        # Tenant ids in one canonical form, so a lookup by the admin's token tenant cannot miss.
        return {normalize_id(tenant, "tenant"): roots for tenant, roots in value.items()}


class GroupSourceSetting(StrEnum):
    TOKEN = "token"  # the token's groups claim, Microsoft Graph on overage
    DIRECTORY = "directory"  # Microsoft Graph always (membership changes apply before the token expires)


class GraphModeSetting(StrEnum):
    OFF = "off"
    APP_ONLY = "app_only"  # client credentials: POST /users/{oid}/getMemberObjects
    ON_BEHALF_OF = "on_behalf_of"  # the caller's token exchanged: GET /me/transitiveMemberOf


class AuthSettings(BaseModel):
    audiences: list[str] = Field(default_factory=lambda: ["api://clearance"])
    authority: str = Field(default="https://login.microsoftonline.com", description="Entra authority host (v2)")
    v1_authority: str = Field(default="https://sts.windows.net", description="issuer host of v1 tokens")
    issuer_templates: list[str] = Field(
        default_factory=list, description="issuers with {tid}; empty: Entra's v2 and v1 issuers of the authority"
    )
    jwks_url: str = Field(default="", description="empty: {authority}/common/discovery/v2.0/keys")
    ca_file: Path | None = Field(default=None, description="a private CA for the authority, JWKS and Graph")
    required_scopes: list[str] = Field(
        default_factory=lambda: ["access_as_user"], description="delegated tokens must carry all of these in scp"
    )
    app_roles: list[str] = Field(default_factory=list, description="app-only tokens need one of these roles")
    app_client_ids: list[str] = Field(
        default_factory=list, description="app-only tokens must come from one of these clients (azp/appid)"
    )
    group_source: GroupSourceSetting = GroupSourceSetting.TOKEN
    jwks_lifespan_seconds: float = Field(default=3600.0, gt=0)
    jwks_cooldown_seconds: float = Field(default=30.0, gt=0)
    jwks_max_age_seconds: float = Field(
        default=86400.0, gt=0, description="the last good key set is served this long while refreshes fail"
    )
    redis_url: str | None = Field(default=None, description="share the group cache between replicas")
    redis_key_prefix: str = "clearance:groups:"
    allowed_tenants: list[str] = Field(default_factory=list, description="tenant ids whose tokens are accepted")
    trust_missing_acct: bool = Field(
        default=False,
        description="treat a token without the optional `acct` claim as a member (configure the claim instead)",
    )
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    group_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    principal_cache_ttl_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a validated token's principal is reused this long (at most the group cache TTL and never past "
        "the token's exp); 0: validate every request",
    )
    principal_cache_max_entries: int = Field(default=10_000, ge=1)
    admin_role: str = "Clearance.Admin"
    auditor_role: str = "Clearance.Auditor"
    reviewer_role: str = "Clearance.Reviewer"


class GraphSettings(BaseModel):
    """Microsoft Graph through msal: group overage, transitive groups and guest status."""

    mode: GraphModeSetting = GraphModeSetting.OFF
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    url: str = "https://graph.microsoft.com"
    scope: str | None = Field(default=None, description="empty: {url}/.default")
    security_enabled_only: bool = True
    timeout_seconds: float = Field(default=5.0, gt=0)
    retry_budget_seconds: float = Field(default=10.0, ge=0, description="429/503 Retry-After honoured within this")
    page_size: int = Field(default=999, ge=1, le=999)
    max_pages: int = Field(default=100, ge=1)
    max_cached_users: int = Field(default=1000, ge=1)


class GeneratorSettings(BaseModel):
    kind: GeneratorKind = GeneratorKind.EXTRACTIVE
    model_path: Path | None = Field(default=None, description="GGUF file for llama_cpp")
    threads: int = Field(default=2, ge=1)
    max_tokens: int = Field(default=256, ge=16)
    base_url: str = Field(default="http://127.0.0.1:11434/v1", description="OpenAI-compatible endpoint")
    api_key: str = ""
    model: str = ""
    timeout_seconds: float = 30.0
    queue_max_waiting: int = Field(
        default=8, ge=0, description="llama_cpp: questions that may wait for the model at once; more get 503"
    )
    queue_max_wait_seconds: float = Field(
        default=60.0, gt=0, description="llama_cpp: longest wait for the model before a 503 with Retry-After"
    )
    passage_chars: int = Field(
        default=700,
        ge=0,
        description="characters of passage text the model reads in all (the sentences nearest the question); "
        "0: whole passages",
    )
    warm_prompt: bool = Field(default=True, description="llama_cpp: read the system prompt once at start-up")


class RetrievalModeSetting(StrEnum):
    DENSE = "dense"  # cosine of the embeddings (today's behaviour, and what min_score was calibrated for)
    SPARSE = "sparse"  # BM25-style term weights only
    HYBRID = "hybrid"  # both, fused by reciprocal rank inside the index query


class RetrievalSettings(BaseModel):
    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(
        default=0.25,
        ge=-1.0,
        le=1.0,
        description="cosine below which passages are ignored (hybrid: in the dense branch, before fusion)",
    )
    # Hybrid by default, measured against dense in one run each: SciFact train nDCG@10 0.867 against 0.817;
    # the persona set (extractive, 847 items) resolved safely 0.942 against 0.934 and correct 0.888 against
    # 0.870, abstention recall 0.985 both; the Qwen subset (140 items) resolved 0.914 / correct 0.867 against
    # 0.907 / 0.850. The price is a second branch per search and a dense look-up of the cosines the
    # relevance gate reads.
    mode: RetrievalModeSetting = Field(
        default=RetrievalModeSetting.HYBRID,
        description="dense (embeddings), sparse (BM25 term weights) or hybrid (both, fused by rank in the index)",
    )
    fusion_candidates: int = Field(default=50, ge=1, le=1000, description="chunks each hybrid branch passes to fusion")
    rrf_k: int = Field(default=60, ge=0, description="reciprocal-rank-fusion offset: score = sum of w / (k + rank)")
    dense_weight: float = Field(default=1.0, ge=0.0, description="hybrid: weight of the dense branch's ranks")
    sparse_weight: float = Field(default=1.0, ge=0.0, description="hybrid: weight of the sparse branch's ranks")
    relevance_floor: float | None = Field(
        default=None,
        ge=-1.0,
        le=2.0,
        description="relevance gate: cosine + 0.5 x share of question terms a passage needs to reach the generator; "
        "empty: the floor calibrated for the mode; -1: no gate",
    )
    rerank_model_path: Path | None = Field(
        default=None, description="a sentence-transformers cross-encoder folder; empty: no reranking"
    )
    rerank_candidates: int = Field(default=20, ge=1, le=200, description="chunks fetched for the reranker to order")
    query_cache_size: int = Field(
        default=4096, ge=0, description="query embeddings kept in memory (LRU by exact text); 0: off"
    )
    # At 1M chunks counting every readable chunk cost 100 ms a query at 10 % and 205 ms at 50 %;
    # a sample kept SciFact's nDCG@10 within 0.01 (docs/scale.md, "IDF over a sample").
    idf_sample_above: int = Field(
        default=10_000,
        ge=0,
        description="sparse/hybrid on the embedded engine: a caller who may read more chunks than this has IDF "
        "counted over a fixed sample of them (about this many chunks walked); 0: always every readable chunk",
    )


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    docs: bool | None = Field(default=None, description="serve /docs and /openapi.json; empty: only in development")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="larger request bodies are refused (413)")
    body_timeout_seconds: float = Field(default=30.0, gt=0, description="a body not received by then is refused")
    allow_insecure_development: bool = Field(
        default=False, description="let development mode (which mints tokens) bind a non-loopback address"
    )


class QueueSettings(BaseModel):
    """Ingestion jobs on a Redis queue that `clearance worker` processes consume (empty URL: a thread in the API)."""

    redis_url: str = Field(
        default="",
        description="redis:// or rediss:// URL of the ingestion queue; empty: jobs run on a thread of the API process. "
        "Queue mode needs an index every process reaches (a Qdrant server URL)",
    )
    namespace: str = Field(default="clearance", pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Redis key prefix")
    max_attempts: int = Field(default=5, ge=1, description="runs of one job (transient failures, lost workers)")
    min_backoff_seconds: float = Field(default=5.0, gt=0, description="first retry after a transient failure")
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    lock_ttl_seconds: float = Field(
        default=60.0, ge=1, description="a source lock whose worker stopped renewing it expires after this"
    )
    busy_retry_seconds: float = Field(
        default=10.0, gt=0, description="a job whose source another job is ingesting waits this long, then tries again"
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0, ge=1, description="a worker silent this long is taken for dead: its jobs go back on the queue"
    )
    dead_worker_sweep_percent: float = Field(
        default=5.0, gt=0, le=100, description="share of queue calls that also look for dead workers' jobs"
    )

    @model_validator(mode="after")
    def _remote_redis_needs_a_password(self) -> QueueSettings:
        """Whoever can write to the queue can make workers re-run or fail jobs: no open Redis off this machine."""
        if not self.redis_url:
            return self
        url = urlparse(self.redis_url)
        if url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("CLEARANCE_QUEUE__REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if url.scheme != "unix" and not url.password and not is_loopback_host(url.hostname or ""):
            raise ValueError("CLEARANCE_QUEUE__REDIS_URL needs a password for a Redis that is not on loopback")
        return self


class TeamsSettings(BaseModel):
    """The Teams bot (`clearance teams serve`, `clearance teams package`): its Entra app and Azure Bot resource."""

    app_id: str = Field(default="", description="the bot's Entra app (client) id: the Azure Bot's Microsoft App ID")
    app_password: SecretStr = Field(default=SecretStr(""), description="that app's client secret")
    tenant_id: str = Field(default="", description="the bot app's home tenant (single-tenant bot)")
    authority: str = Field(default="https://login.microsoftonline.com", description="Entra host (stub in tests)")
    ca_file: Path | None = Field(default=None, description="a private CA for the authority")
    sso_connection: str = Field(default="clearance-sso", description="the Azure Bot's OAuth connection (Teams SSO)")
    sso_resource: str = Field(default="", description="Application ID URI of the SSO app: api://<domain>/<app id>")
    api_url: str = Field(default="http://127.0.0.1:8000", description="the Clearance API the bot asks")
    api_scope: str = Field(default="api://clearance/.default", description="on-behalf-of scope for the API")
    channel_issuer: str = "https://api.botframework.com"
    channel_jwks_url: str = Field(
        default="https://login.botframework.com/v1/.well-known/keys", description="keys of the channel's tokens"
    )
    token_service_url: str = Field(default="https://api.botframework.com", description="Bot Framework token service")
    service_url_hosts: list[str] = Field(
        default_factory=list, description="hosts replies may go to besides Microsoft's own (an activity's serviceUrl)"
    )
    check_service_url_hosts: bool = Field(
        default=True,
        description="replies go only to https hosts of Microsoft's or service_url_hosts (off: a local connector stub)",
    )
    stream_interval_seconds: float = Field(default=1.0, ge=0, description="least time between streamed updates")
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=1, le=65535)
    name: str = Field(default="Clearance", max_length=30)
    description: str = Field(default="Answers from company documents you can open, with citations.", max_length=80)
    developer_name: str = Field(default="Clearance", max_length=32)
    website_url: str = "https://example.com"
    privacy_url: str = "https://example.com/privacy"
    terms_url: str = "https://example.com/terms"
    domains: list[str] = Field(default_factory=list, description="valid domains of the app package")
    version: str = Field(default="1.0.0", pattern=r"^\d+\.\d+\.\d+$")


class StoreSettings(BaseModel):
    """The state store (job records, the audit): a SQLite file by default, PostgreSQL by URL."""

    url: SecretStr = Field(
        default=SecretStr(""),
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host:5432/clearance; "
        "empty: sqlite:///<data_dir>/state.db",
    )
    schema_name: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema (created if missing)"
    )
    migrate: bool = Field(default=True, description="apply schema migrations at start-up (off: `clearance db upgrade`)")
    connect_timeout_seconds: float = Field(default=5.0, gt=0, description="a store that does not answer by then: 503")
    pool_size: int = Field(default=5, ge=1, le=100)


class RetentionSettings(BaseModel):
    """How long each kind of record is kept, in days (0 or empty: forever), and the schedule in `clearance serve`."""

    conversations_days: float | None = Field(
        default=180, ge=0, description="a conversation is deleted this long after its last exchange"
    )
    feedback_days: float | None = Field(
        default=365, ge=0, description="a rating is deleted this long after it last changed"
    )
    review_days: float | None = Field(
        default=365, ge=0, description="a review item is deleted this long after it last changed"
    )
    audit_days: float | None = Field(
        default=None,
        ge=0,
        description="audit records older than this are cut from each chain behind a verifiable checkpoint; "
        "empty: kept forever (set it to what your regulator requires, e.g. 2555 for seven years)",
    )
    schedule: bool = Field(default=True, description="run retention inside `clearance serve` every interval")
    interval_seconds: float = Field(default=3600.0, ge=60, description="time between scheduled runs")
    first_run_delay_seconds: float = Field(default=300.0, ge=0, description="the first scheduled run, after start-up")


class McpSettings(BaseModel):
    """The Model Context Protocol endpoint (streamable HTTP): at /mcp of the HTTP API, or alone (`clearance mcp`)."""

    enabled: bool = Field(
        default=True, description="serve /mcp on the HTTP API's own port (`clearance serve`, `clearance demo`)"
    )
    host: str = Field(default="127.0.0.1", description="`clearance mcp` alone: bind address")
    port: int = Field(default=8001, ge=1, le=65535, description="`clearance mcp` alone: port")
    resource_url: str = Field(
        default="",
        description="the URL clients reach the MCP endpoint at, its resource identifier in the protected resource "
        "metadata (behind a proxy: the public https URL ending in /mcp); empty: http://{host}:{port}/mcp of the "
        "server that serves it (the HTTP API's, or `clearance mcp`'s)",
    )
    authorization_server: str = Field(
        default="",
        description="the issuer clients get tokens from, named in the metadata; empty: {auth.authority}/{tenant}/v2.0 "
        "for the one allowed tenant, or /organizations/v2.0 for several",
    )


class PolicySettings(BaseModel):
    """The content policy file (input, passage and output rules): see retrieval/policy/default.toml."""

    path: Path | None = Field(default=None, description="a policy TOML file; empty: the default shipped with Clearance")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLEARANCE_", env_nested_delimiter="__", extra="ignore")

    mode: Mode = Mode.PRODUCTION
    data_dir: Path = Field(default=Path(".clearance"), description="index, job records and development keys")
    users_file: Path = Field(default=REPO_ROOT / "samples" / "users.json", description="development directory")
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    teams: TeamsSettings = Field(default_factory=TeamsSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)

    @property
    def docs_enabled(self) -> bool:
        return self.server.docs if self.server.docs is not None else self.mode is Mode.DEVELOPMENT

    @property
    def index_location(self) -> str:
        # Qdrant's engine in-process by default: HNSW and payload indexes keep filtered search in
        # milliseconds at a million chunks, where qdrant-client's local mode scans in Python
        # (benchmarks/search.py measures both). One process owns the shard.
        return self.index.location or f"edge:{self.data_dir / 'edge'}"

    @property
    def dev_idp_dir(self) -> Path:
        return self.data_dir / "dev-idp"


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
