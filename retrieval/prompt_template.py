"""One version of a prompt: an immutable record, validated before anything stores or uses it.

A template is identified by ``name/version`` (the id every answer records). Its
``system`` text is the model's instructions; its ``user`` text frames the
passages and the question through the placeholders ``{passages}`` and
``{question}``, substituted in one pass so that neither a passage nor a
question can inject the other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ABSTAIN_ANSWER = "I could not find this in documents you can access."
DEFAULT_USER = "Passages:\n\n{passages}\n\nQuestion: {question}"
PLACEHOLDERS = ("passages", "question")

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_SYSTEM_CHARS = 20_000
MAX_USER_CHARS = 4_000
MAX_DESCRIPTION_CHARS = 500
_PLACEHOLDER = re.compile(r"\{(passages|question)\}")


class PromptTemplateError(ValueError):
    """A template that cannot be stored or used; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: str
    system: str
    user: str = DEFAULT_USER
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def digest(self) -> str:
        """What the model receives, hashed: two versions with the same digest send the same prompt."""
        text = "\x00".join((self.system, self.user))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def render_user(self, *, passages: str, question: str) -> str:
        values = {"passages": passages, "question": question}
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.user)


def validated(template: PromptTemplate) -> PromptTemplate:
    """``template`` when it can be used; PromptTemplateError naming the first problem otherwise."""
    if not NAME_PATTERN.fullmatch(template.name):
        raise PromptTemplateError(f"prompt name {template.name!r}: lower-case letters, digits and '-', up to 63")
    if not VERSION_PATTERN.fullmatch(template.version):
        raise PromptTemplateError(f"prompt version {template.version!r}: letters, digits, '.', '_', '-', up to 32")
    for field, text, bound in (
        ("system", template.system, MAX_SYSTEM_CHARS),
        ("user", template.user, MAX_USER_CHARS),
        ("description", template.description, MAX_DESCRIPTION_CHARS),
    ):
        if len(text) > bound:
            raise PromptTemplateError(f"{template.id}: {field} is {len(text)} characters, the limit is {bound}")
        if "\x00" in text:
            raise PromptTemplateError(f"{template.id}: {field} contains a NUL character")
    if not template.system.strip():
        raise PromptTemplateError(f"{template.id}: the system text is empty")
    # Abstentions are recognised by this exact sentence (and forced by the llama.cpp grammar):
    # a prompt that words it differently would turn every abstention into an unchecked answer.
    if ABSTAIN_ANSWER not in template.system:
        raise PromptTemplateError(
            f"{template.id}: the system text must contain the abstention sentence {ABSTAIN_ANSWER!r}"
        )
    for placeholder in PLACEHOLDERS:
        count = template.user.count("{" + placeholder + "}")
        if count != 1:
            raise PromptTemplateError(f"{template.id}: the user text must hold {{{placeholder}}} once, found {count}")
    return template
