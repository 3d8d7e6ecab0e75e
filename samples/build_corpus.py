"""Build the Clearance sample corpus from ``samples/content/`` (see samples/README.md).

Renders each document into ``corpus/`` (``markup.py`` reads it, ``render.py``
writes it), copies the ACL manifests, writes ``users.json`` and
``questions.json``, then checks the questions against an independent reading
of the manifests on disk. The output is reproducible byte for byte.

Run from the repository root::

    .venv/bin/python samples/build_corpus.py
"""

from __future__ import annotations

import email.policy
import html
import json
import re
import shutil
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pptx
from markup import Document, load_documents, source_text
from render import WRITERS

SAMPLES_DIR = Path(__file__).resolve().parent
CONTENT_DIR = SAMPLES_DIR / "content"
CORPUS_DIR = SAMPLES_DIR / "corpus"
USERS_FILE = SAMPLES_DIR / "users.json"
QUESTIONS_FILE = SAMPLES_DIR / "questions.json"

MIN_WORDS = 150
MAX_WORDS = 800
MAX_CORPUS_BYTES = 1_000_000
MANIFEST_KEYS = {"allow", "deny", "inherit"}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --- Directory and questions ----------------------------------------------


def directory(source: dict[str, Any]) -> dict[str, Any]:
    """The ``users.json`` document from ``content/directory.json``.

    Tenants are keyed by their corpus folder and groups by name there; here
    both become ids. ``distribution_lists`` adds ``count`` groups named
    ``dl-NNN`` with the ids ``uuid5(NAMESPACE_URL, "<tenant>/dl-NNN")``, and
    makes its ``members`` members of all of them.
    """
    tenants: dict[str, dict[str, str]] = source["tenants"]
    lists = source["distribution_lists"]
    list_tenant = lists["tenant"]
    dl_names = [f"dl-{i:03d}" for i in range(1, lists["count"] + 1)]
    dl_ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{list_tenant}/{name}")) for name in dl_names]
    group_ids = {name: group["id"] for name, group in source["groups"].items()}
    groups = [{"id": g["id"], "tenant": tenants[g["tenant"]]["id"], "name": n} for n, g in source["groups"].items()]
    groups += [
        {"id": gid, "tenant": tenants[list_tenant]["id"], "name": n} for gid, n in zip(dl_ids, dl_names, strict=True)
    ]
    users = []
    for user in source["users"]:
        member_of = [group_ids[name] for name in user["groups"]]
        member_of += dl_ids if user["name"] in lists["members"] else []
        users.append({**user, "tenant": tenants[user["tenant"]]["id"], "groups": member_of})
    return {"tenants": list(tenants.values()), "groups": groups, "users": users}


def questions(source: list[dict[str, Any]], user_names: list[str]) -> list[dict[str, Any]]:
    """The ``questions.json`` document: ``content/questions.json`` plus ``hidden_from``."""
    return [{**q, "hidden_from": [name for name in user_names if name not in q["visible_to"]]} for q in source]


# --- Self-check: an independent reading of the manifests written to disk ---

AclSets = tuple[frozenset[str], frozenset[str]]


def _apply(manifest: Path, parent: AclSets | None) -> AclSets | None:
    """The entries in force below ``manifest``, given those in force above it."""
    if not manifest.is_file():
        return parent
    data = _read_json(manifest)
    allow, deny = frozenset(data.get("allow", [])), frozenset(data.get("deny", []))
    if data.get("inherit", False) and parent is not None:
        return allow | parent[0], deny | parent[1]
    return allow, deny


def effective_acl(relative: str) -> AclSets | None:
    """The allow and deny entries in force for a corpus file, or None.

    Walks from the source folder (``brightwater``, ``northwind``) down to the
    file's folder, then applies the file's sidecar.
    """
    parts = relative.split("/")
    acl: AclSets | None = None
    for depth in range(1, len(parts)):
        acl = _apply(CORPUS_DIR.joinpath(*parts[:depth], ".acl.json"), acl)
    return _apply(CORPUS_DIR / f"{relative}.acl.json", acl)


def can_read(user: dict[str, Any], relative: str, source_tenants: dict[str, str]) -> bool:
    """Whether ``user`` (a users.json entry, groups fully resolved) may read a file."""
    acl = effective_acl(relative)
    if acl is None:
        return False
    source_tenant = source_tenants[relative.split("/", 1)[0]]

    def matches(entry: str) -> bool:
        if entry == "tenant":
            return bool(user["tenant"] == source_tenant and not user["guest"])
        kind, _, value = entry.partition(":")
        return (kind == "user" and value == user["oid"]) or (kind == "group" and value in user["groups"])

    allow, deny = acl
    return not any(matches(e) for e in deny) and any(matches(e) for e in allow)


def extracted_text(path: Path) -> str | None:
    """Text read back from a generated file (None for PDF, not read here)."""
    parts: list[str] = []
    if path.suffix == ".docx":
        out = docx.Document(str(path))
        parts = [p.text for p in out.paragraphs] + [c.text for t in out.tables for row in t.rows for c in row.cells]
    elif path.suffix == ".pptx":
        for slide in pptx.Presentation(str(path)).slides:
            for shape in slide.shapes:
                parts += [shape.text_frame.text] if shape.has_text_frame else []
                parts += [c.text for row in shape.table.rows for c in row.cells] if shape.has_table else []
    elif path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        parts = [
            str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None
        ]
        book.close()
    elif path.suffix == ".eml":
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        parts = [str(message["Subject"]), body.get_content()]
    elif path.suffix == ".html":
        parts = [html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))]
    elif path.suffix in (".txt", ".md", ".csv"):
        parts = [path.read_text(encoding="utf-8")]
    else:
        return None
    return "\n".join(parts)


def _squash(text: str) -> str:
    return " ".join(text.split())


def self_check(documents: tuple[Document, ...], source_tenants: dict[str, str]) -> None:
    """Assert that questions.json agrees with the manifests and the documents."""
    texts = {d.path: source_text(d) for d in documents}
    directory_users = {str(u["name"]): u for u in _read_json(USERS_FILE)["users"]}
    assert len(directory_users["frank"]["groups"]) > 200, "frank must overflow a 200-group token"

    for question in _read_json(QUESTIONS_FILE):
        qid, relative = question["id"], question["document"]
        visible, hidden = set(question["visible_to"]), set(question["hidden_from"])
        assert visible | hidden == set(directory_users) and not visible & hidden, qid
        assert (CORPUS_DIR / relative).is_file(), f"{qid}: missing {relative}"
        for name, user in directory_users.items():
            expected = name in visible
            assert can_read(user, relative, source_tenants) == expected, f"{qid}: {name} expected {expected}"
        answer = question["answer_contains"]
        holders = [path for path, text in texts.items() if answer in text]
        assert holders == [relative], f"{qid}: {answer!r} found in {holders}"
        text = extracted_text(CORPUS_DIR / relative)
        if text is not None:
            assert _squash(answer) in _squash(text), f"{qid}: {answer!r} not in file text"

    # Every document is readable by someone, except the unmanifested drafts.
    for document in documents:
        readers = [n for n, u in directory_users.items() if can_read(u, document.path, source_tenants)]
        assert bool(readers) != document.path.startswith("brightwater/drafts/"), document.path


# --- Build ------------------------------------------------------------------


def write_documents(documents: tuple[Document, ...]) -> None:
    """Render every document into the corpus folder."""
    for document in documents:
        text = source_text(document)
        assert MIN_WORDS <= len(text.split()) <= MAX_WORDS, f"{document.path}: {len(text.split())} words"
        assert text.isascii(), f"{document.path}: non-ASCII text"
        assert document.fmt in WRITERS, f"{document.path}: no writer for .{document.fmt}"
        target = CORPUS_DIR / document.path
        target.parent.mkdir(parents=True, exist_ok=True)
        WRITERS[document.fmt](document, target)


def copy_manifests() -> int:
    """Copy every ``.acl.json`` of the content tree into the corpus; return how many."""
    manifests = sorted(CONTENT_DIR.rglob("*.acl.json"))
    for source in manifests:
        relative = source.relative_to(CONTENT_DIR).as_posix()
        manifest = _read_json(source)
        assert set(manifest) == MANIFEST_KEYS, f"{relative}: keys must be {sorted(MANIFEST_KEYS)}"
        target = CORPUS_DIR / relative
        assert target.parent.is_dir(), f"manifest without documents: {relative}"
        sidecar_for = target.parent / source.name.removesuffix(".acl.json")
        assert source.name == ".acl.json" or sidecar_for.is_file(), f"sidecar without a file: {relative}"
        _write_json(target, manifest)
    return len(manifests)


def main() -> None:
    documents = load_documents(CONTENT_DIR)
    directory_source = _read_json(CONTENT_DIR / "directory.json")
    users = directory(directory_source)
    question_list = questions(_read_json(CONTENT_DIR / "questions.json"), [u["name"] for u in users["users"]])
    if CORPUS_DIR.exists():
        shutil.rmtree(CORPUS_DIR)
    write_documents(documents)
    manifest_count = copy_manifests()
    _write_json(USERS_FILE, users)
    _write_json(QUESTIONS_FILE, question_list)
    self_check(documents, {folder: tenant["id"] for folder, tenant in directory_source["tenants"].items()})
    formats = sorted({d.fmt for d in documents})
    size = sum(p.stat().st_size for p in CORPUS_DIR.rglob("*") if p.is_file())
    assert size < MAX_CORPUS_BYTES, f"corpus is {size} bytes"
    print(
        f"wrote {len(documents)} documents in {len(formats)} formats ({', '.join(formats)}), "
        f"{manifest_count} manifests, {len(question_list)} questions; {size:,} bytes"
    )


if __name__ == "__main__":
    main()
