"""The oracle itself, checked against the documented contract rule by rule (no product code runs here).

If the oracle were wrong, the property tests would compare the product with a wrong answer; each test
below is one sentence of the README's "ACL manifests" and "Access-control model" sections.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest

from acl.principal import Principal
from tests.acl_reference import (
    Caller,
    RefAcl,
    caller_keys,
    effective_acls,
    is_guid,
    may_read,
    parse_manifest,
    readable_documents,
)
from tests.conftest import OTHER_TENANT, TENANT

U1, U2 = "b0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002"
G1, G2 = "e0000000-0000-4000-8000-000000000001", "e0000000-0000-4000-8000-000000000002"


def user(oid: str) -> str:
    return f"user:{TENANT}/{oid}"


def group(gid: str) -> str:
    return f"group:{TENANT}/{gid}"


def doc(root: Path, relative: str, text: str = "some text.") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def manifest(path: Path, **content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


# -- manifests ------------------------------------------------------------------------------------------------


def test_entries_become_keys_qualified_with_the_source_tenant_in_lower_case() -> None:
    level = parse_manifest(
        json.dumps({"allow": ["tenant", f"user:{U1.upper()}", f"group:{G1}"], "deny": [f"user:{U2}"]}).encode(),
        tenant_id=TENANT.upper(),
    )
    assert level is not None
    assert level.allow == {f"tenant:{TENANT}", user(U1), group(G1)}
    assert level.deny == {user(U2)}
    assert level.inherit is False


@pytest.mark.parametrize(
    "text",
    [
        '{"allow": [], "allow": ["tenant"]}',  # duplicate keys
        '{"allow": ["tenant"], "owner": "x"}',  # unknown key
        '{"allow": ["TENANT"]}',
        '{"allow": ["everyone"]}',
        f'{{"allow": ["USER:{U1}"]}}',
        f'{{"allow": ["user:{U1} "]}}',
        f'{{"allow": ["user:{{{U1}}}"]}}',
        f'{{"allow": ["tenant:{TENANT}"]}}',
        '{"allow": "tenant"}',
        '{"allow": ["tenant"], "inherit": "true"}',
        '{"allow": ["tenant"], "inherit": 1}',
        '["tenant"]',
        "",
        '{"allow": ["tenant"],}',
    ],
)
def test_anything_but_the_documented_shape_is_a_broken_manifest(text: str) -> None:
    assert parse_manifest(text.encode(), tenant_id=TENANT) is None


def test_missing_keys_default_to_empty_lists_and_no_inheritance() -> None:
    assert parse_manifest(b"{}", tenant_id=TENANT) is not None


def test_guids_are_accepted_in_any_case_and_nothing_else() -> None:
    assert is_guid(U1) and is_guid(U1.upper())
    assert not is_guid(U1[:-1]) and not is_guid(U1 + "\n") and not is_guid(U1.replace("0", "０"))
    assert not is_guid(U1.replace("-", "")) and not is_guid(None)


# -- keys and the rule ----------------------------------------------------------------------------------------


def test_caller_keys_have_the_documented_form() -> None:
    member = Caller(TENANT.upper(), U1.upper(), (G1.upper(),))
    assert caller_keys(member) == {user(U1), group(G1), f"tenant:{TENANT}"}
    assert caller_keys(Caller(TENANT, U1, (G1,), guest=True)) == {user(U1), group(G1)}


def test_caller_keys_match_the_principal_keys_the_index_filter_uses() -> None:
    for guest in (False, True):
        caller = Caller(TENANT.upper(), U1.upper(), (G1, G2.upper()), guest=guest)
        principal = Principal(
            tenant_id=caller.tenant_id, object_id=caller.object_id, groups=frozenset(caller.groups), guest=guest
        )
        assert caller_keys(caller) == principal.access_keys()


def test_deny_beats_allow_and_other_tenants_never_match() -> None:
    acl = RefAcl(allow=frozenset({f"tenant:{TENANT}"}), deny=frozenset({user(U2)}))
    assert may_read(acl, source_tenant=TENANT, caller=Caller(TENANT, U1))
    assert not may_read(acl, source_tenant=TENANT, caller=Caller(TENANT, U2))
    assert not may_read(acl, source_tenant=TENANT, caller=Caller(OTHER_TENANT, U1))
    assert not may_read(acl, source_tenant=TENANT, caller=Caller(TENANT, U1, guest=True))
    assert not may_read(None, source_tenant=TENANT, caller=Caller(TENANT, U1))


# -- the walk -------------------------------------------------------------------------------------------------


def test_inherit_adds_to_the_parent_and_its_absence_replaces(tmp_path: Path) -> None:
    manifest(tmp_path / ".acl.json", allow=["tenant"], deny=[f"user:{U2}"])
    doc(tmp_path, "a/added.txt")
    manifest(tmp_path / "a" / "added.txt.acl.json", allow=[f"group:{G1}"], inherit=True)
    doc(tmp_path, "a/replaced.md")
    manifest(tmp_path / "a" / "replaced.md.acl.json", allow=[f"group:{G1}"])
    doc(tmp_path, "b/c/deep.txt")
    manifest(tmp_path / "b" / ".acl.json", allow=[f"group:{G2}"], inherit=False)
    manifest(tmp_path / "b" / "c" / ".acl.json", deny=[f"group:{G1}"], inherit=True)
    acls = effective_acls(tmp_path, tenant_id=TENANT)
    assert acls["a/added.txt"] == RefAcl(frozenset({f"tenant:{TENANT}", group(G1)}), frozenset({user(U2)}))
    assert acls["a/replaced.md"] == RefAcl(frozenset({group(G1)}), frozenset())
    assert acls["b/c/deep.txt"] == RefAcl(frozenset({group(G2)}), frozenset({group(G1)}))


def test_inherit_without_a_parent_acl_is_its_own_acl(tmp_path: Path) -> None:
    doc(tmp_path, "a.txt")
    manifest(tmp_path / "a.txt.acl.json", allow=["tenant"], inherit=True)
    assert effective_acls(tmp_path, tenant_id=TENANT)["a.txt"] == RefAcl(frozenset({f"tenant:{TENANT}"}), frozenset())


def test_no_manifest_above_a_file_is_nobody(tmp_path: Path) -> None:
    doc(tmp_path, "drafts/secret.md")
    assert effective_acls(tmp_path, tenant_id=TENANT) == {"drafts/secret.md": None}


def test_a_broken_folder_manifest_hides_everything_below_even_deeper_valid_ones(tmp_path: Path) -> None:
    manifest(tmp_path / ".acl.json", allow=["tenant"])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".acl.json").write_text('{"allow": ["tenant"], "allow": ["tenant"]}', encoding="utf-8")
    doc(tmp_path, "a/b/deep.txt")
    manifest(tmp_path / "a" / "b" / ".acl.json", allow=["tenant"])
    manifest(tmp_path / "a" / "b" / "deep.txt.acl.json", allow=["tenant"])
    doc(tmp_path, "ok.txt")
    acls = effective_acls(tmp_path, tenant_id=TENANT)
    assert acls["a/b/deep.txt"] is None and acls["ok.txt"] is not None


@pytest.mark.parametrize("kind", ["directory", "fifo", "broken_link", "dev_null", "link_to_valid"])
def test_a_manifest_that_is_not_a_regular_file_is_broken(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "source"
    manifest(root / ".acl.json", allow=["tenant"])
    doc(root, "sub/doc.txt")
    target = root / "sub" / ".acl.json"
    valid = manifest(tmp_path / "valid.json", allow=["tenant"])
    {
        "directory": lambda: target.mkdir(),
        "fifo": lambda: os.mkfifo(target),
        "broken_link": lambda: target.symlink_to(root / "missing.json"),
        "dev_null": lambda: target.symlink_to("/dev/null"),
        "link_to_valid": lambda: target.symlink_to(valid),
    }[kind]()
    assert effective_acls(root, tenant_id=TENANT) == {"sub/doc.txt": None}


def test_near_miss_sidecars_make_their_file_nobody(tmp_path: Path) -> None:
    manifest(tmp_path / ".acl.json", allow=["tenant"])
    doc(tmp_path, "plan.txt")
    manifest(tmp_path / "plan.txt.ACL.json", allow=["tenant"])
    doc(tmp_path, "café.md")
    manifest(tmp_path / (unicodedata.normalize("NFD", "café.md") + ".acl.json"), allow=["tenant"])
    doc(tmp_path, "exact.txt")
    manifest(tmp_path / "exact.txt.acl.json", allow=["tenant"])
    acls = effective_acls(tmp_path, tenant_id=TENANT)
    assert acls["plan.txt"] is None and acls["café.md"] is None and acls["exact.txt"] is not None


def test_only_regular_text_files_with_text_are_documents(tmp_path: Path) -> None:
    manifest(tmp_path / ".acl.json", allow=["tenant"])
    doc(tmp_path, "real.txt")
    doc(tmp_path, "notes.md")
    doc(tmp_path, "empty.txt", "")
    doc(tmp_path, "blank.md", " \n")
    doc(tmp_path, ".hidden.txt")
    doc(tmp_path, ".git/config.txt")
    doc(tmp_path, "data.json")
    doc(tmp_path, "x.txt.ACL.JSON", '{"allow": ["tenant"]}')
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    (tmp_path / "out.txt").symlink_to("/etc/hostname")
    fd = os.open(os.path.join(os.fsencode(tmp_path), b"bad\xff.txt"), os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"text.")
    os.close(fd)
    assert set(effective_acls(tmp_path, tenant_id=TENANT)) == {"real.txt", "notes.md"}


def test_readable_documents_applies_the_rule_to_every_document(tmp_path: Path) -> None:
    manifest(tmp_path / ".acl.json", allow=["tenant"], deny=[f"user:{U2}"])
    doc(tmp_path, "all.txt")
    doc(tmp_path, "g1/only.txt")
    manifest(tmp_path / "g1" / ".acl.json", allow=[f"group:{G1.upper()}"])
    assert readable_documents(tmp_path, tenant_id=TENANT, caller=Caller(TENANT, U1)) == {"all.txt"}
    assert readable_documents(tmp_path, tenant_id=TENANT, caller=Caller(TENANT, U1, (G1,))) == {
        "all.txt",
        "g1/only.txt",
    }
    assert readable_documents(tmp_path, tenant_id=TENANT, caller=Caller(TENANT, U2, (G1,))) == {"g1/only.txt"}
    assert readable_documents(tmp_path, tenant_id=TENANT, caller=Caller(OTHER_TENANT, U1, (G1,))) == set()
