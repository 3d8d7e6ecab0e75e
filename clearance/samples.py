"""Where the bundled sample corpus of each sample tenant lives."""

from __future__ import annotations

from acl.dev.directory import Directory
from clearance.settings import REPO_ROOT
from ingest.source import FilesystemSource

SAMPLE_CORPUS = REPO_ROOT / "samples" / "corpus"


def sample_sources(directory: Directory) -> dict[str, FilesystemSource]:
    """One filesystem source per sample tenant that has documents, keyed by tenant id.

    A sample tenant's documents live in the folder named after the first label
    of its domain (``brightwater.example`` -> ``samples/corpus/brightwater``).
    """
    sources: dict[str, FilesystemSource] = {}
    for tenant_id in directory.tenant_names:
        folder = SAMPLE_CORPUS / directory.tenant_domains.get(tenant_id, tenant_id).split(".")[0]
        if folder.is_dir():
            sources[tenant_id] = FilesystemSource(root=folder, tenant_id=tenant_id)
    return sources
