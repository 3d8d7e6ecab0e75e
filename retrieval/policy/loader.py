"""Reading a policy file (TOML): the shipped default, or the one CLEARANCE_POLICY__PATH names."""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from retrieval.policy.engine import ContentPolicy
from retrieval.policy.rules import PolicyDocument

DEFAULT_POLICY = "default.toml"


class PolicyFileError(ValueError):
    """A policy file that cannot be read, parsed or validated: the service does not start with it."""


def default_policy_bytes() -> bytes:
    return resources.files("retrieval.policy").joinpath(DEFAULT_POLICY).read_bytes()


def parse_policy(raw: bytes, *, where: str) -> ContentPolicy:
    """A policy from a file's bytes; its SHA-256 (over those bytes) names it in every audit record."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        document = PolicyDocument.model_validate(data)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyFileError(f"content policy {where} is not a UTF-8 TOML file: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise PolicyFileError(f"content policy {where} is invalid: {problems}") from exc
    return ContentPolicy(document=document, sha256=hashlib.sha256(raw).hexdigest())


def load_policy(path: Path | None = None) -> ContentPolicy:
    """The policy at ``path``; None: the default shipped with Clearance (retrieval/policy/default.toml)."""
    if path is None:
        return parse_policy(default_policy_bytes(), where="(default)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"content policy {path} cannot be read: {exc.strerror or exc}") from exc
    return parse_policy(raw, where=str(path))
