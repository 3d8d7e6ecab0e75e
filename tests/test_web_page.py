"""The chat page: served as one self-contained HTML file that talks only to this API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import STATIC
from clearance.compose import Runtime, build_api
from clearance.settings import Mode

PAGE = STATIC / "index.html"


@pytest.fixture()
def client(runtime: Runtime) -> TestClient:
    return TestClient(build_api(runtime.settings, runtime=runtime))


def test_page_is_served_as_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Clearance</title>" in response.text
    assert 'lang="en"' in response.text


def test_page_loads_nothing_from_outside(client: TestClient) -> None:
    html = client.get("/").text
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"""@import|url\(\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"""fetch\(\s*["'`]https?:""", html)


def test_page_uses_the_api_paths(client: TestClient) -> None:
    html = client.get("/").text
    for path in ("/dev/users", "/dev/token", "/v1/chat", "/v1/me"):
        assert f'"{path}"' in html, path


def test_page_inputs_are_labelled(client: TestClient) -> None:
    html = client.get("/").text
    assert '<label for="q">' in html
    assert 'aria-live="polite"' in html
    assert '"aria-live", "polite"' in html  # the streamed answer itself


def test_page_falls_back_to_a_pasted_token_without_development_routes(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"mode": Mode.PRODUCTION})
    with TestClient(build_api(settings, runtime=runtime)) as prod:
        assert prod.get("/").status_code == 200
        users = prod.get("/dev/users")
        assert users.status_code == 404
        assert users.headers["content-type"].startswith("application/problem+json")
    assert "err.status === 404) showTokenForm()" in PAGE.read_text(encoding="utf-8")


def test_development_routes_the_page_reads(client: TestClient) -> None:
    users = client.get("/dev/users").json()["users"]
    assert {"name", "display_name", "title", "tenant", "groups", "group_count", "guest"} <= set(users[0])
    token = client.post("/dev/token", json={"user": users[0]["name"]}).json()["access_token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert {"name", "groups", "groups_complete", "roles", "guest", "tenant_id"} <= set(me)


NODE_CHECK = r"""
const vm = require("vm");
const html = require("fs").readFileSync(process.argv[2], "utf8");
const script = html.match(/<script>([\s\S]*?)<\/script>/)[1];
const ctx = {TextDecoder, Response, ReadableStream, TextEncoder};
vm.createContext(ctx);
vm.runInContext(script, ctx);
const {parseSSE, readEvents} = ctx.ClearanceSSE;
const wire = process.argv[3];
(async () => {
  const out = {whole: parseSSE(wire), chunked: []};
  const bytes = new TextEncoder().encode(wire);
  const stream = new ReadableStream({start(c) {  // 3-byte chunks split lines and characters
    for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
    c.close();
  }});
  await readEvents(new Response(stream), (event, data) => out.chunked.push([event, data]));
  console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_parses_server_sent_events_split_anywhere(tmp_path: Path) -> None:
    wire = (
        'event: token\ndata: {"text": "Per diem is "}\n\n'
        ': a comment\r\nevent: token\r\ndata: {"text": "$78 [1] — ünïcode"}\r\n\r\n'
        'event: replace\ndata: {"answer": "Per diem is $78 [1]."}\n\n'
        'event: citations\ndata: {"citations": [{"id": 1}]}\n\n'
        'event: done\ndata: {"outcome": "grounded"}'  # no trailing blank line: flushed at the end
    )
    script = tmp_path / "check.js"
    script.write_text(NODE_CHECK, encoding="utf-8")
    run = subprocess.run(["node", str(script), str(PAGE), wire], capture_output=True, text=True, timeout=30, check=True)
    out = json.loads(run.stdout)
    assert [e["event"] for e in out["whole"]["events"]] == ["token", "token", "replace", "citations"]
    assert out["whole"]["rest"].startswith("event: done")
    assert out["chunked"] == [
        ["token", {"text": "Per diem is "}],
        ["token", {"text": "$78 [1] — ünïcode"}],
        ["replace", {"answer": "Per diem is $78 [1]."}],
        ["citations", {"citations": [{"id": 1}]}],
        ["done", {"outcome": "grounded"}],
    ]


def test_progress_is_sent_first_only_when_asked(client: TestClient) -> None:
    from tests.test_api import sse_events

    token = client.post("/dev/token", json={"user": "admin"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for progress in (True, False):
        body = {"question": "What is the travel per diem?", "stream": True, "progress": progress}
        with client.stream("POST", "/v1/chat", json=body, headers=headers) as response:
            names = [name for name, _ in sse_events(response.read().decode())]
        assert (names[0] == "progress") is progress and names.count("progress") == int(progress)
        assert names[-1] == "done"


def test_sample_users_get_questions_they_may_ask(tmp_path: Path) -> None:
    from acl.dev.suggestions import load_suggestions
    from clearance.settings import REPO_ROOT

    suggestions = load_suggestions(REPO_ROOT / "samples" / "questions.json")
    questions = json.loads((REPO_ROOT / "samples" / "questions.json").read_text(encoding="utf-8"))
    visible = {(q["question"], user) for q in questions for user in q["visible_to"]}
    assert suggestions["bob"] and suggestions["erin"]
    assert all((q, user) in visible for user, asked in suggestions.items() for q in asked)
    broken = tmp_path / "questions.json"
    broken.write_text("{not json", encoding="utf-8")
    assert load_suggestions(broken) == {} and load_suggestions(tmp_path / "missing.json") == {}
