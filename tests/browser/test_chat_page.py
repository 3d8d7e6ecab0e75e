"""The chat page in a real browser (Debian's chromium driven by Playwright) over the sample company.

Each step saves a screenshot under ``test-artifacts/browser/``. The app is the real one (development
mode, extractive answers); the Stop test swaps in the OpenAI-compatible generator against a local
model stub that writes slowly, so there is something to stop. Without chromium or Playwright the
module skips, saying why.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from benchmarks.server import running_app
from clearance.compose import Runtime, build_runtime
from clearance.samples import sample_sources
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder
from retrieval.answer import AnswerService
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_compatible import OpenAICompatibleGenerator

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs it)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REVENUE = "What was Brightwater's revenue in Q3 2025?"
TIMEOUT_MS = 30_000

Page = Any  # playwright's Page; the module is imported lazily so that a missing package skips


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[Runtime]:
    data = tmp_path_factory.mktemp("browser")
    settings = Settings(
        data_dir=data / "data",
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        ingest=IngestSettings(isolate_parsing=False),
    )
    runtime = build_runtime(settings, embedder=embedder)
    assert runtime.dev is not None
    for source in sample_sources(runtime.dev.directory).values():
        runtime.pipeline.run(source)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def app_url(company: Runtime) -> Iterator[str]:
    with running_app(company) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        # Headless, and a fresh profile in a new temporary folder per launch (Playwright's own).
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=TIMEOUT_MS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any, app_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    options: dict[str, Any] = getattr(request, "param", {})
    context = browser.new_context(base_url=app_url, accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto("/")
    yield tab
    context.close()
    assert not errors, errors  # no uncaught script error on any step


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pick(page: Page, user: str) -> None:
    page.locator(f'input[name="user"][value="{user}"]').check()
    page.wait_for_function("() => !document.getElementById('q').disabled")


def ask(page: Page, question: str) -> Any:
    page.fill("#q", question)
    page.press("#q", "Enter")
    answer = page.locator("article.a").last
    answer.locator(".meta").wait_for()
    return answer


def served(app_url: str, method: str, path: str) -> bool:
    """Whether the app has a route (as bob: an unknown /v1/ route is a 404 only past authentication)."""
    token = httpx.post(f"{app_url}/dev/token", json={"user": "bob"}, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    status = httpx.request(
        method, f"{app_url}{path}", json={} if method == "POST" else None, headers=headers, timeout=10
    )
    return status.status_code not in (404, 405)


def conversations_served(app_url: str) -> bool:
    return served(app_url, "GET", "/v1/conversations")


# -- pick a user, ask, watch the stream, open a source and the document ---------------------------------------


def test_pick_ask_watch_open_source_and_document(page: Page, app_url: str) -> None:
    shot(page, "01-users")
    pick(page, "bob")
    suggestions = page.locator(".suggest button")
    assert suggestions.count() >= 1, "bob should be offered questions he may ask"
    shot(page, "02-signed-in-with-suggestions")
    page.fill("#q", REVENUE)
    page.press("#q", "Enter")
    # The waiting state says what is happening. Read in the page in one step: the answer can
    # finish between a wait and a separate read, and the progress line is gone by then.
    waiting = page.wait_for_function("() => document.querySelector('article.a .progress')?.innerText")
    assert re.search(r"Searching|Reading \d+ passage|Writing", str(waiting.json_value()))
    shot(page, "03-waiting")
    answer = page.locator("article.a").last
    answer.locator(".meta").wait_for()
    assert page.locator("article.a .progress").count() == 0
    assert "grounded" in answer.locator(".badge").inner_text() or "extractive" in answer.locator(".badge").inner_text()
    shot(page, "04-answer")

    answer.locator(".cite").first.click()
    dialog = page.locator("dialog#source")
    dialog.locator(".cited").wait_for()
    cited = dialog.locator(".cited").inner_text()
    assert len(cited) > 20
    shot(page, "05-source-panel")
    with page.expect_download() as download:
        dialog.locator("#source-open").click()
    saved = ARTIFACTS / f"06-{download.value.suggested_filename}"
    download.value.save_as(saved)
    assert saved.stat().st_size > 0 and "finance" in (dialog.locator("#source-where").inner_text() + saved.name).lower()
    assert "Downloaded" in dialog.locator("#source-note").inner_text()
    shot(page, "06-document-opened")
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")


def test_copy_answer_puts_the_answer_on_the_clipboard(page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    pick(page, "alice")
    answer = ask(page, "What is the daily meal per diem for a trip to a standard US city?")
    answer.get_by_role("button", name="Copy answer").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied and copied.split("[")[0].strip() in answer.locator(".answer").inner_text()


# -- Stop -----------------------------------------------------------------------------------------------------


class _SlowModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible model that writes passage [1]'s first sentence with an amount, cited, every 0.3 s."""

    disconnected: ClassVar[threading.Event] = threading.Event()
    started: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
        block = re.search(r"^\[1\][^\n]*\n(.*?)(?:^\[2\]|\Z)", prompt, re.MULTILINE | re.DOTALL)
        sentences = re.split(r"(?<=[.!?])\s+", block.group(1) if block else "")
        # The passage's first sentence with an amount: it answers a "how much" question, so it is shown.
        sentence = next((x for x in sentences if "$" in x), "Nothing.").strip().rstrip(".!? ")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        type(self).started.set()
        try:
            for _ in range(200):
                delta = {"index": 0, "delta": {"content": f"{sentence} [1]. "}, "finish_reason": None}
                chunk = {"id": "s", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                chunk["choices"] = [delta]
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.3)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            type(self).disconnected.set()  # Clearance closed the model's stream: generation stopped

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def slow_url(company: Runtime) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    generator = OpenAICompatibleGenerator(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="test", model="slow", timeout_seconds=60
    )
    answers = AnswerService(
        index=company.index, embedder=company.embedder, generator=generator, fallback=ExtractiveGenerator(), top_k=3
    )
    try:
        with running_app(dataclasses.replace(company, answers=answers)) as url:
            yield url
    finally:
        server.shutdown()
        server.server_close()


def test_stop_ends_the_answer_and_the_model_stream(browser: Any, slow_url: str) -> None:
    _SlowModel.disconnected.clear()
    context = browser.new_context(base_url=slow_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/")
        pick(page, "alice")
        page.fill("#q", "How much is a personal vehicle reimbursed per mile?")
        page.press("#q", "Enter")
        page.locator("#stop").wait_for(state="visible")
        page.wait_for_function("() => document.querySelector('article.a .answer').textContent.length > 0")
        shot(page, "07-streaming-before-stop")
        page.locator("#stop").click()
        answer = page.locator("article.a").last
        answer.locator(".badge.stopped").wait_for()
        shown = answer.locator(".answer").inner_text()
        time.sleep(1.0)
        assert answer.locator(".answer").inner_text() == shown, "text kept arriving after Stop"
        assert page.locator("#send").is_visible() and not page.locator("#stop").is_visible()
        assert _SlowModel.disconnected.wait(10), "the model kept writing after Stop"
        shot(page, "08-stopped")
    finally:
        context.close()


# -- switching users ------------------------------------------------------------------------------------------


def test_switching_users_leaves_nothing_of_the_previous_conversation(page: Page, app_url: str) -> None:
    pick(page, "bob")
    answer = ask(page, REVENUE)
    bob_text = answer.locator(".answer").inner_text()
    answer.locator(".cite").first.click()
    page.locator("dialog#source .cited").wait_for()
    bob_passage = page.locator("dialog#source .cited").inner_text()
    page.keyboard.press("Escape")
    pick(page, "alice")
    body = page.locator("body").inner_text()
    html = page.content()
    for trace in (REVENUE, bob_text[:40], bob_passage[:40]):
        assert trace not in body and trace not in html, trace
    assert page.locator("article.a").count() == 0 and page.input_value("#q") == ""
    assert not page.locator("dialog#source").evaluate("d => d.open")
    assert page.evaluate("document.getElementById('source-body').childElementCount") == 0
    if conversations_served(app_url):
        assert REVENUE not in page.locator("#convs").inner_text()
    else:
        assert page.locator("#convs").is_hidden()  # no conversation routes: history stays in the tab
    shot(page, "09-switched-to-alice")


# -- phone width, keyboard only, dark mode, long questions ----------------------------------------------------


@pytest.mark.parametrize("page", [{"viewport": {"width": 390, "height": 844}, "is_mobile": True}], indirect=True)
def test_phone_width_question_box_without_scrolling(page: Page) -> None:
    shot(page, "10-phone-users")
    pick(page, "grace")
    box = page.locator("#q").bounding_box()
    assert page.evaluate("window.scrollY") == 0
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 844, box
    shot(page, "11-phone-signed-in")
    ask(page, "What is the home-office stipend for new starters?")
    assert page.locator("#q").bounding_box()["y"] + 10 <= 844 + page.evaluate("window.scrollY")
    shot(page, "12-phone-answer")


def test_keyboard_only(page: Page) -> None:
    page.locator('input[name="user"]').first.wait_for()  # the list is fetched after load: keys before it go nowhere
    page.keyboard.press("Tab")  # the "Who is asking" summary
    page.keyboard.press("Tab")  # the first sample user
    page.keyboard.press("ArrowDown")  # radios move with arrows: the second user (bob)
    page.wait_for_function("() => !document.getElementById('q').disabled")
    assert page.evaluate("document.querySelector('input[name=user]:checked').value") == "bob"
    page.locator("#q").focus()  # reach the box by tabbing: count the stops to prove it is reachable
    page.locator('input[name="user"]:checked').focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(REVENUE)
    page.keyboard.press("Enter")
    answer = page.locator("article.a").last
    answer.locator(".meta").wait_for()
    page.locator("article.a .chip").first.focus()
    page.keyboard.press("Enter")
    page.locator("dialog#source .cited").wait_for()
    assert page.evaluate("document.activeElement.closest('dialog') !== null")
    shot(page, "13-keyboard-source")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.classList.contains('chip')")  # focus returns to the chip
    shot(page, "14-keyboard-done")


@pytest.mark.parametrize("page", [{"color_scheme": "dark"}], indirect=True)
def test_dark_mode_follows_the_system(page: Page) -> None:
    pick(page, "carol")
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    red, green, blue = (int(x) for x in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background
    shot(page, "15-dark-mode")


def test_a_long_question_is_refused_with_a_message_not_truncated(page: Page) -> None:
    pick(page, "alice")
    long = "Why " + "really " * 400
    page.fill("#q", long)
    assert len(page.input_value("#q")) == len(long)  # nothing cut off silently
    assert "too long" in page.locator("#q-count").inner_text()
    assert page.locator("#send").is_disabled()
    shot(page, "16-too-long")


# -- hostile text is shown as text ----------------------------------------------------------------------------

HOSTILE = (
    '<script>window.pwned = 1</script> <img src=x onerror="window.pwned = 2"> [click](javascript:window.pwned=3) '
    '**bold** and `<b>code</b>` [1].\n\n| a | b |\n|---|---|\n| <svg onload="window.pwned=4"> | 2 |\n\n- one\n- two\n\n'
    "```\n<iframe src=javascript:window.pwned=5></iframe>\n```"
)


def test_answers_and_passages_render_markdown_and_never_html(page: Page) -> None:
    citation = {"id": 1, "chunk_id": "00000000-0000-4000-8000-000000000001", "source": "x/<b>.md", "snippet": "s",
                "title": "<img src=x onerror=window.pwned=6>", "section": None, "page": None}  # fmt: skip
    done = {"answer_id": "a1", "answer": HOSTILE, "outcome": "grounded", "generator": "stub", "prompt": "p",
            "timings_ms": {}, "access": {"narrowed": False, "reasons": []}}  # fmt: skip
    stream = "".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n"
        for name, data in [("token", {"text": HOSTILE}), ("citations", {"citations": [citation]}), ("done", done)]
    )
    before = [{"chunk_id": "c", "section": None, "page": None, "text": "<img src=x onerror=window.pwned=7>"}]
    passage = {"chunk_id": citation["chunk_id"], "doc_id": "00000000-0000-4000-8000-000000000002", "after": [],
               "title": "t", "source": "s", "section": None, "page": None, "text": HOSTILE}  # fmt: skip
    passage["before"] = before
    # Faked at the network boundary only: the answer and passage carry markup a document could hold.
    page.route("**/v1/chat", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=stream))
    page.route(
        "**/v1/passages/*",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(passage)),
    )
    pick(page, "alice")
    answer = ask(page, "anything")
    answer.locator(".chip").first.click()
    page.locator("dialog#source .cited").wait_for()
    time.sleep(0.3)
    assert page.evaluate("window.pwned") is None
    for tag in ("script", "img", "svg", "iframe"):
        assert page.locator(f"main {tag}, dialog {tag}").count() == 0, tag
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("code").first.inner_text() == "<b>code</b>"
    assert answer.locator("table td").first.inner_text().startswith("<svg")
    assert answer.locator(".answer li").count() == 2 and answer.locator(".answer pre").count() == 1
    assert answer.locator('a[href^="javascript"]').count() == 0
    assert "<script>" in page.locator("dialog#source .cited").inner_text()
    shot(page, "17-hostile-text-as-text")


# -- conversations and feedback, where the server has them ----------------------------------------------------


def test_feedback_and_conversations_follow_what_the_server_offers(page: Page, app_url: str) -> None:
    pick(page, "bob")
    answer = ask(page, REVENUE)
    feedback_served = served(app_url, "POST", "/v1/feedback")
    if feedback_served:
        answer.get_by_role("button", name=re.compile("Not helpful")).click()
        answer.locator("select").select_option("outdated")
        answer.locator("textarea").fill("The Q3 figures were restated.")
        answer.get_by_role("button", name="Send feedback").click()
        answer.get_by_text("Thanks for your feedback.").wait_for()
    else:
        assert answer.locator(".feedback").count() == 0
    if conversations_served(app_url):
        page.locator("#conv-list button[data-id]").first.wait_for()
        page.get_by_role("button", name="New conversation").click()
        page.locator("#conv-list button[data-id]").first.click()
        page.locator("article.a").first.wait_for()
        assert REVENUE in page.locator("#log").inner_text()
    else:
        assert page.locator("#convs").is_hidden()
    shot(page, "18-feedback-and-conversations")
