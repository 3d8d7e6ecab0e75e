"""Prompt templates as TOML files: the built-in versions shipped in ``retrieval/prompt_templates/``, and any
file an operator adds with ``clearance prompts add FILE``.

A file holds one version::

    name = "grounded-answer"
    version = "v2"
    default = false          # built-ins only: the version a tenant uses until one is activated
    description = "..."
    system = "..."           # must contain the abstention sentence
    user = "...{passages}...{question}..."   # optional; the default frames passages then question

Unknown keys and wrong types are refused, so a typo never silently drops a field.
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.prompt_template import DEFAULT_USER, PromptTemplate, PromptTemplateError, validated

BUILTIN_DIR = Path(__file__).resolve().parent / "prompt_templates"
MAX_FILE_BYTES = 64 * 1024
_KEYS = {"name", "version", "default", "description", "system", "user"}


@dataclass(frozen=True, slots=True)
class PromptFile:
    template: PromptTemplate
    default: bool = False


def parse_prompt(text: str, *, where: str = "prompt file") -> PromptFile:
    """The version ``text`` describes, validated; PromptTemplateError naming the problem otherwise."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise PromptTemplateError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptTemplateError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise PromptTemplateError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    template = PromptTemplate(
        name=_text(data, "name", where),
        version=_text(data, "version", where),
        system=_text(data, "system", where),
        user=_text(data, "user", where, default=DEFAULT_USER),
        description=_text(data, "description", where, default=""),
    )
    default = data.get("default", False)
    if not isinstance(default, bool):
        raise PromptTemplateError(f"{where}: 'default' must be true or false")
    return PromptFile(template=validated(template), default=default)


def read_prompt_file(path: Path) -> PromptFile:
    try:
        if not path.is_file():
            raise PromptTemplateError(f"{path}: not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PromptTemplateError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptTemplateError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return parse_prompt(text, where=str(path))


@functools.cache
def builtin_prompts() -> tuple[PromptFile, ...]:
    """Every shipped version, ordered by name and version; exactly one default per name."""
    files = []
    for path in sorted(BUILTIN_DIR.glob("*/*.toml")):
        prompt_file = read_prompt_file(path)
        # The path names the version, so two files can never claim the same one.
        if (path.parent.name, path.stem) != (prompt_file.template.name, prompt_file.template.version):
            raise PromptTemplateError(f"{path}: a built-in version's file must be <name>/<version>.toml")
        files.append(prompt_file)
    names = {f.template.name for f in files}
    for name in names:
        defaults = [f.template.version for f in files if f.template.name == name and f.default]
        if len(defaults) != 1:
            raise PromptTemplateError(f"built-in prompt {name!r} needs exactly one default version, found {defaults}")
    return tuple(files)


def builtin_default(name: str) -> PromptTemplate:
    """The built-in default version of ``name``; PromptTemplateError when none ships."""
    for prompt_file in builtin_prompts():
        if prompt_file.default and prompt_file.template.name == name:
            return prompt_file.template
    raise PromptTemplateError(f"no built-in prompt named {name!r}")


def to_toml(template: PromptTemplate) -> str:
    """``template`` as a prompt file that :func:`parse_prompt` reads back to the same version."""
    # JSON string escapes are valid TOML basic-string escapes, and ASCII-only output survives any terminal.
    fields = [("name", template.name), ("version", template.version), ("description", template.description)]
    fields += [("system", template.system), ("user", template.user)]
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields)


def _text(data: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise PromptTemplateError(f"{where}: {key!r} must be a string")
    return value
