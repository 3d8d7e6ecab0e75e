"""Questions the chat page suggests to each sample user: ones whose answer that user may read.

Read from the sample question set beside the development directory
(``samples/questions.json``: ``question`` and ``visible_to`` per entry). A
missing or unreadable file means no suggestions; it never stops the server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)
PER_USER = 4


def load_suggestions(path: Path, *, per_user: int = PER_USER) -> Mapping[str, tuple[str, ...]]:
    """Up to ``per_user`` questions per sample user name, in file order; empty when the file is unusable."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("sample questions at %s are unreadable (%s): no suggestions", path, type(exc).__name__)
        return {}
    found: dict[str, list[str]] = {}
    for entry in entries if isinstance(entries, list) else []:
        question = entry.get("question") if isinstance(entry, dict) else None
        users = entry.get("visible_to") if isinstance(entry, dict) else None
        if not isinstance(question, str) or not isinstance(users, list):
            continue
        for user in users:
            if isinstance(user, str) and len(found.setdefault(user, [])) < per_user:
                found[user].append(question)
    return {user: tuple(questions) for user, questions in found.items()}
