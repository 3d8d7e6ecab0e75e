"""The Teams bot end to end: signed, simulated Teams activities against POST /api/messages.

Real components throughout: the Agents SDK's adapter, user authorization and connector
client; msal against the HTTPS Entra stub (on-behalf-of); the Clearance API served by
uvicorn on loopback with its own token validation and trimming. Fakes only at process
boundaries: the Entra stub, and the channel stub (Teams' token issuer, connector at the
activity's serviceUrl, and the Bot Framework token service).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from acl.dev.entra_stub import EntraStub
from clearance.compose import Runtime, build_api, build_runtime
from clearance.settings import AuthSettings, IndexSettings, IngestSettings, Mode, Settings, TeamsSettings
from clearance.teams.channel_stub import ChannelStub, ReceivedActivity
from clearance.teams.compose import build_teams_app
from index.embedding import SentenceTransformerEmbedder
from ingest.source import FilesystemSource
from tests.conftest import TENANT
from tests.test_permissions import ENG, FIN, build_corpus

BOT_APP_ID = "a7b00000-0000-4000-8000-00000000b0b0"
BOT_SECRET = "bot-secret-for-tests"
SSO_RESOURCE = f"api://bot.example.com/{BOT_APP_ID}"
SSO_CONNECTION = "clearance-sso"
QUESTION = "What was the Q3 revenue?"
FINANCE_FACT = "12.4 million"

ALICE = ("29:alice", "Alice Finance", "b1000000-0000-4000-8000-000000000001")  # in the finance group
BOB = ("29:bob", "Bob Engineer", "b2000000-0000-4000-8000-000000000002")  # engineering only
CAROL = ("29:carol", "Carol Newcomer", "b3000000-0000-4000-8000-000000000003")  # never signed in
DAVE = ("29:dave", "Dave Consent", "b4000000-0000-4000-8000-000000000004")  # signs in through Teams SSO
EVE = ("29:eve", "Eve Stale", "b5000000-0000-4000-8000-000000000005")  # a token Entra will not exchange


@pytest.fixture(scope="module")
def channel() -> Iterator[ChannelStub]:
    with ChannelStub() as server:
        yield server


@pytest.fixture(scope="module")
def clearance(
    stub: EntraStub, embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Runtime]]:
    """The Clearance API in production mode, trusting the Entra stub, served over HTTP on loopback."""
    root = tmp_path_factory.mktemp("teams")
    settings = Settings(
        mode=Mode.PRODUCTION,
        data_dir=root / "data",
        index=IndexSettings(location=":memory:"),
        ingest=IngestSettings(isolate_parsing=False),
        auth=AuthSettings(
            authority=stub.url,
            v1_authority=stub.url,
            ca_file=stub.ca_file,
            audiences=[stub.api_audience],
            allowed_tenants=[TENANT],
        ),
    )
    runtime: Runtime = build_runtime(settings, embedder=embedder)
    runtime.pipeline.run(FilesystemSource(root=build_corpus(root / "corpus"), tenant_id=TENANT))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(build_api(settings, runtime=runtime), host="127.0.0.1", port=port, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", runtime
    server.should_exit = True
    thread.join(timeout=10)
    runtime.close()


@pytest.fixture(scope="module")
def bot(stub: EntraStub, channel: ChannelStub, clearance: tuple[str, Runtime]) -> Iterator[TestClient]:
    stub.register_client(BOT_APP_ID, BOT_SECRET, api_audiences=(SSO_RESOURCE, BOT_APP_ID))
    stub.add_user(TENANT, ALICE[2], groups=[FIN])
    stub.add_user(TENANT, BOB[2], groups=[ENG])
    stub.add_user(TENANT, DAVE[2], groups=[FIN])
    stub.add_user(TENANT, EVE[2], groups=[FIN])
    # Eve's stored token is for an app the bot's registration does not own: Entra refuses the exchange.
    eve_token = stub.mint_access_token(
        tenant_id=TENANT, object_id=EVE[2], audience=f"api://elsewhere.example/{BOT_APP_ID}", client_id=BOT_APP_ID
    )
    channel.store_user_token(user_id=EVE[0], connection=SSO_CONNECTION, token=eve_token)
    for user in (ALICE, BOB):  # signed in before: the token service holds their SSO tokens
        channel.store_user_token(user_id=user[0], connection=SSO_CONNECTION, token=sso_token(stub, user))
    settings = TeamsSettings(
        app_id=BOT_APP_ID,
        app_password=SecretStr(BOT_SECRET),
        tenant_id=TENANT,
        authority=stub.url,
        ca_file=stub.ca_file,
        sso_connection=SSO_CONNECTION,
        api_url=clearance[0],
        channel_jwks_url=channel.jwks_url,
        token_service_url=channel.url,
        check_service_url_hosts=False,  # the connector stub is plain http on loopback
        stream_interval_seconds=0.0,
    )
    # One event loop for the module: the SDK replays a question after sign-in on a background task.
    with TestClient(build_teams_app(settings)) as client:
        yield client


def sso_token(stub: EntraStub, user: tuple[str, str, str]) -> str:
    """What the token service holds after Teams SSO: a token for the bot's own API, issued to the bot."""
    return stub.mint_access_token(tenant_id=TENANT, object_id=user[2], audience=SSO_RESOURCE, client_id=BOT_APP_ID)


def activity(
    user: tuple[str, str, str], text: str, *, conversation: str, kind: str = "personal", service_url: str
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": str(uuid.uuid4()),
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": user[0], "name": user[1], "aadObjectId": user[2]},
        "recipient": {"id": f"28:{BOT_APP_ID}", "name": "Clearance"},
        "conversation": {
            "id": conversation,
            "conversationType": kind,
            "tenantId": TENANT,
            "isGroup": kind != "personal",
        },
        "channelData": {"tenant": {"id": TENANT}},
        "text": text,
        "locale": "en-US",
    }


def post(bot: TestClient, channel: ChannelStub, body: dict[str, Any], *, token: str | None = None) -> Any:
    token = token or channel.channel_token(app_id=BOT_APP_ID)
    return bot.post("/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})


def ask(
    bot: TestClient, channel: ChannelStub, user: tuple[str, str, str], *, kind: str = "personal", text: str = QUESTION
) -> list[ReceivedActivity]:
    conversation = f"{kind}:{user[0]}:{uuid.uuid4()}"
    response = post(
        bot, channel, activity(user, text, conversation=conversation, kind=kind, service_url=channel.service_url)
    )
    assert response.status_code in (200, 202), response.text
    return channel.activities(conversation)


def final_message(received: list[ReceivedActivity]) -> dict[str, Any]:
    messages = [r.activity for r in received if r.activity.get("type") == "message"]
    assert messages, [r.activity for r in received]
    return messages[-1]


def ai_entity(message: dict[str, Any]) -> dict[str, Any]:
    entities: list[dict[str, Any]] = message.get("entities", [])
    [entity] = [e for e in entities if e.get("type") == "https://schema.org/Message"]
    return entity


def assert_valid_citations(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Teams' AI citation entity: the label, and a claim behind every [n] in the text and no other."""
    entity = ai_entity(message)
    assert entity["@type"] == "Message" and entity["@context"] == "https://schema.org"
    assert entity["additionalType"] == ["AIGeneratedContent"]
    citations: list[dict[str, Any]] = entity.get("citation") or []
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", message["text"])}
    assert {c["position"] for c in citations} == markers
    for claim in citations:
        assert claim["@type"] == "Claim"
        appearance = claim["appearance"]
        assert appearance["@type"] == "DigitalDocument" and appearance["name"]
        assert 0 < len(appearance["abstract"]) <= 160
    return citations


def test_two_users_asking_the_same_question_get_their_own_trimmed_answers(
    bot: TestClient, channel: ChannelStub
) -> None:
    alice = final_message(ask(bot, channel, ALICE))
    bob = final_message(ask(bot, channel, BOB))
    assert FINANCE_FACT in alice["text"]
    alice_citations = assert_valid_citations(alice)
    assert any("finance/q3.md" in " ".join(c["appearance"].get("keywords", [])) for c in alice_citations)
    assert FINANCE_FACT not in bob["text"]
    for claim in assert_valid_citations(bob):
        assert "finance/" not in " ".join(claim["appearance"].get("keywords", []))
        assert FINANCE_FACT not in claim["appearance"]["abstract"]


def test_personal_chat_answer_is_streamed_then_finalised(bot: TestClient, channel: ChannelStub) -> None:
    received = ask(bot, channel, ALICE)
    updates = [r.activity for r in received if r.activity.get("type") == "typing"]
    assert updates and updates[0]["entities"][0]["streamType"] == "informative"
    stream_id = updates[0]["entities"][0].get("streamId") or None
    final = final_message(received)
    [info] = [e for e in final["entities"] if e.get("type") == "streaminfo"]
    assert info["streamType"] == "final"
    assert stream_id is None or info["streamId"] == final["id"]


def test_replies_carry_the_bots_own_connector_token_not_a_users(bot: TestClient, channel: ChannelStub) -> None:
    received = ask(bot, channel, BOB)
    for reply in received:
        claims = jwt.decode(reply.authorization.removeprefix("Bearer "), options={"verify_signature": False})
        assert claims["aud"] == "https://api.botframework.com" and claims["azp"] == BOT_APP_ID
        assert "scp" not in claims  # app-only: the connector token can read no one's documents


@pytest.mark.parametrize("kind", ["groupChat", "channel"])
def test_shared_conversation_answer_is_built_for_the_asker_and_says_so(
    bot: TestClient, channel: ChannelStub, kind: str
) -> None:
    received = ask(bot, channel, ALICE, kind=kind, text=f"<at>Clearance</at> {QUESTION}")
    assert not [r for r in received if r.activity.get("type") == "typing" and r.activity.get("entities")]
    message = final_message(received)
    assert message["text"].startswith("<at>Alice Finance</at>, answered from documents you can open")
    [mention] = [e for e in message["entities"] if e.get("type") == "mention"]
    assert mention["mentioned"]["id"] == ALICE[0]
    assert FINANCE_FACT in message["text"]
    assert_valid_citations(message)


def test_user_who_cannot_sign_in_gets_a_sign_in_card_and_no_answer(
    bot: TestClient, channel: ChannelStub, stub: EntraStub
) -> None:
    conversation = f"personal:{CAROL[0]}"
    body = activity(CAROL, QUESTION, conversation=conversation, service_url=channel.service_url)
    assert post(bot, channel, body).status_code in (200, 202)
    received = [r.activity for r in channel.activities(conversation)]
    cards = [a for a in received for att in a.get("attachments") or [] if att["contentType"].endswith("card.oauth")]
    assert len(cards) == 1
    content = cards[0]["attachments"][0]["content"]
    assert content["connectionName"] == SSO_CONNECTION and content["tokenExchangeResource"]["id"]
    # Teams tries the silent exchange with Carol's SSO token; the token service cannot exchange it.
    invoke = activity(CAROL, "", conversation=conversation, service_url=channel.service_url)
    invoke.update(
        type="invoke",
        name="signin/tokenExchange",
        value={
            "id": content["tokenExchangeResource"]["id"],
            "connectionName": SSO_CONNECTION,
            "token": sso_token(stub, CAROL),
        },
    )
    response = post(bot, channel, invoke)
    assert response.status_code == 412
    everything = " ".join(str(a.get("text")) for a in (r.activity for r in channel.activities(conversation)))
    assert FINANCE_FACT not in everything and "picnic" not in everything


def test_teams_sso_exchange_completes_sign_in_and_answers_the_waiting_question(
    bot: TestClient, channel: ChannelStub, stub: EntraStub
) -> None:
    conversation = f"personal:{DAVE[0]}"
    body = activity(DAVE, QUESTION, conversation=conversation, service_url=channel.service_url)
    assert post(bot, channel, body).status_code in (200, 202)
    token = sso_token(stub, DAVE)
    channel.allow_exchange(sso_token=token, result=token)
    invoke = activity(DAVE, "", conversation=conversation, service_url=channel.service_url)
    invoke.update(
        type="invoke", name="signin/tokenExchange", value={"id": "x", "connectionName": SSO_CONNECTION, "token": token}
    )
    assert post(bot, channel, invoke).status_code == 200
    deadline = time.monotonic() + 30  # the waiting question is replayed after the invoke's response
    while time.monotonic() < deadline and not any(
        r.activity.get("type") == "message" and FINANCE_FACT in str(r.activity.get("text"))
        for r in channel.activities(conversation)
    ):
        time.sleep(0.1)
    answer = final_message(channel.activities(conversation))
    assert FINANCE_FACT in answer["text"]
    assert_valid_citations(answer)


def test_forged_channel_token_is_refused_and_nothing_is_sent(bot: TestClient, channel: ChannelStub) -> None:
    conversation = f"personal:{ALICE[0]}:forged"
    body = activity(ALICE, QUESTION, conversation=conversation, service_url=channel.service_url)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = channel.channel_token(app_id=BOT_APP_ID, key=other_key)
    assert post(bot, channel, body, token=forged).status_code == 401
    assert bot.post("/api/messages", json=body).status_code == 401
    wrong_audience = channel.channel_token(app_id=str(uuid.uuid4()))
    assert post(bot, channel, body, token=wrong_audience).status_code == 401
    wrong_issuer = channel.channel_token(app_id=BOT_APP_ID, issuer="https://evil.example")
    assert post(bot, channel, body, token=wrong_issuer).status_code == 401
    assert channel.activities(conversation) == []


def test_genuine_token_cannot_redirect_replies_to_another_service_url(bot: TestClient, channel: ChannelStub) -> None:
    conversation = f"personal:{ALICE[0]}:redirect"
    body = activity(ALICE, QUESTION, conversation=conversation, service_url="http://127.0.0.1:9/elsewhere/")
    assert post(bot, channel, body).status_code == 401


def test_app_package_holds_manifest_and_icons(tmp_path: Path) -> None:
    from clearance.teams.manifest import write_package

    settings = TeamsSettings(app_id=BOT_APP_ID, domains=["bot.example.com"], name='Clear "ance"')
    package = write_package(settings, tmp_path)
    import json
    import zipfile

    manifest = json.loads(package.manifest.read_text())
    assert manifest["bots"][0]["botId"] == BOT_APP_ID and manifest["id"] == BOT_APP_ID
    assert manifest["webApplicationInfo"] == {"id": BOT_APP_ID, "resource": SSO_RESOURCE}
    assert manifest["name"]["short"] == 'Clear "ance"' and manifest["validDomains"] == ["bot.example.com"]
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "groupChat", "team"}
    with zipfile.ZipFile(package.zip_file) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        for name, size in (("color.png", 192), ("outline.png", 32)):
            data = archive.read(name)
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert int.from_bytes(data[16:20], "big") == size == int.from_bytes(data[20:24], "big")


def test_app_package_refuses_an_app_id_that_is_not_a_guid(tmp_path: Path) -> None:
    from clearance.teams.manifest import write_package

    with pytest.raises(ValueError, match="GUID"):
        write_package(TeamsSettings(app_id="not-a-guid", domains=["x.example"]), tmp_path)


def test_user_whose_token_entra_will_not_exchange_gets_no_answer_and_signs_in_again(
    bot: TestClient, channel: ChannelStub
) -> None:
    conversation = f"personal:{EVE[0]}"
    body = activity(EVE, QUESTION, conversation=conversation, service_url=channel.service_url)
    assert post(bot, channel, body).status_code in (200, 202)
    texts = [str(r.activity.get("text")) for r in channel.activities(conversation)]
    assert texts == ["I could not confirm who you are. Please ask again to sign in."]
    body["id"] = str(uuid.uuid4())
    assert post(bot, channel, body).status_code in (200, 202)
    [*_, card] = [r.activity for r in channel.activities(conversation)]
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.oauth"
    assert not any(FINANCE_FACT in str(r.activity) for r in channel.activities(conversation))


def test_feedback_buttons_reach_the_feedback_endpoint_as_the_asker(
    bot: TestClient, channel: ChannelStub, clearance: tuple[str, Runtime]
) -> None:
    from sqlalchemy import select

    from store.feedback import FeedbackRow

    conversation = f"personal:{ALICE[0]}:feedback"
    body = activity(ALICE, QUESTION, conversation=conversation, service_url=channel.service_url)
    assert post(bot, channel, body).status_code in (200, 202)
    received = channel.activities(conversation)
    answer = final_message(received)
    assert answer["channelData"] == {"feedbackLoopEnabled": True}
    message_id = received[0].reply_id  # Teams gives a streamed message the id of its first update

    def submit(user: tuple[str, str, str], reaction: str, text: str) -> int:
        invoke = activity(user, "", conversation=conversation, service_url=channel.service_url)
        invoke.update(
            type="invoke",
            name="message/submitAction",
            replyToId=message_id,
            value={
                "actionName": "feedback",
                "actionValue": {"reaction": reaction, "feedback": f'{{"feedbackText": "{text}"}}'},
            },
        )
        return int(post(bot, channel, invoke).status_code)

    assert submit(BOB, "like", "not mine to rate") == 200  # someone else's answer: ignored
    assert submit(ALICE, "dislike", "too short") == 200
    runtime = clearance[1]
    assert runtime.store is not None
    with runtime.store.database.read() as session:
        rows = session.execute(select(FeedbackRow)).scalars().all()
        assert [(r.object_id, r.rating, r.comment) for r in rows] == [(ALICE[2], "down", "too short")]


def test_logs_carry_no_tokens_and_errors_shown_to_users_carry_no_internals(
    bot: TestClient, channel: ChannelStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        ask(bot, channel, ALICE)
        received = ask(bot, channel, EVE)  # a failed exchange: logged as a failure, told as "sign in again"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", logged)  # no JWT (SSO, API or connector token)
    for reply in received:
        text = str(reply.activity.get("text"))
        assert "Error" not in text and "AADSTS" not in text and "Traceback" not in text
