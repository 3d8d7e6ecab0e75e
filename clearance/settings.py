"""All settings, in one class built at start-up and passed down.

Every field is an environment variable with the ``CLEARANCE_`` prefix; nested
sections use ``__``, e.g. ``CLEARANCE_INDEX__LOCATION`` or
``CLEARANCE_AUTH__AUDIENCES='["api://clearance"]'``. The README lists them all.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Mode(StrEnum):
    DEVELOPMENT = "development"  # the bundled development identity provider is trusted
    PRODUCTION = "production"  # only the configured issuers (Entra ID) are trusted


class GeneratorKind(StrEnum):
    EXTRACTIVE = "extractive"
    LLAMA_CPP = "llama_cpp"
    OPENAI = "openai"


class IndexSettings(BaseModel):
    location: str = Field(
        default="", description="':memory:', a folder, or a Qdrant server URL; empty: <data_dir>/index"
    )
    api_key: str | None = Field(default=None, description="Qdrant server API key")
    collection: str = "clearance_chunks"
    timeout_seconds: float = 10.0


class EmbeddingSettings(BaseModel):
    model_path: Path | None = Field(default=None, description="sentence-transformers model folder; empty: bundled")
    threads: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)


class IngestSettings(BaseModel):
    max_chunk_chars: int = Field(default=1000, ge=200, le=8000)
    default_tenant: str | None = Field(default=None, description="tenant id used when --tenant is omitted")
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [REPO_ROOT / "samples"],
        description="folders an admin may ingest through the API (the CLI may ingest any folder)",
    )


class AuthSettings(BaseModel):
    audiences: list[str] = Field(default_factory=lambda: ["api://clearance"])
    issuer_templates: list[str] = Field(
        default_factory=lambda: [
            "https://login.microsoftonline.com/{tid}/v2.0",
            "https://sts.windows.net/{tid}/",
        ]
    )
    jwks_url: str = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    allowed_tenants: list[str] = Field(default_factory=list, description="tenant ids whose tokens are accepted")
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    group_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    admin_role: str = "Clearance.Admin"


class GeneratorSettings(BaseModel):
    kind: GeneratorKind = GeneratorKind.EXTRACTIVE
    model_path: Path | None = Field(default=None, description="GGUF file for llama_cpp")
    threads: int = Field(default=2, ge=1)
    max_tokens: int = Field(default=256, ge=16)
    base_url: str = Field(default="http://127.0.0.1:11434/v1", description="OpenAI-compatible endpoint")
    api_key: str = ""
    model: str = ""
    timeout_seconds: float = 30.0


class RetrievalSettings(BaseModel):
    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(default=0.25, ge=-1.0, le=1.0, description="cosine below which passages are ignored")


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLEARANCE_", env_nested_delimiter="__", extra="ignore")

    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Field(default=Path(".clearance"), description="index, job records and development keys")
    users_file: Path = Field(default=REPO_ROOT / "samples" / "users.json", description="development directory")
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)

    @property
    def index_location(self) -> str:
        return self.index.location or str(self.data_dir / "index")

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def dev_idp_dir(self) -> Path:
        return self.data_dir / "dev-idp"
