"""The JWKS cache against the stub's real HTTPS key endpoint: rotation, bursts, outages, maximum age."""

from __future__ import annotations

import threading
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from acl.dev.entra_stub import Counters, EntraStub, Switches
from acl.jwks import JwksKeys
from acl.tokens import TokenValidator
from core.errors import AuthenticationError
from tests.conftest import TENANT, ManualClock
from tests.entra_stub_fixtures import new_id, validator


@pytest.fixture(autouse=True)
def fresh_switches(stub: EntraStub) -> None:
    stub.switches, stub.counters = Switches(), Counters()  # the module's stub (conftest) with no switch left on


def keys(
    stub: EntraStub,
    clock: ManualClock,
    *,
    lifespan_seconds: float = 3600.0,
    cooldown_seconds: float = 30.0,
    max_age_seconds: float = 86_400.0,
) -> JwksKeys:
    return JwksKeys(
        url=stub.jwks_url,
        ca_file=stub.ca_file,
        clock=clock,
        lifespan_seconds=lifespan_seconds,
        cooldown_seconds=cooldown_seconds,
        max_age_seconds=max_age_seconds,
    )


def user_token(stub: EntraStub) -> str:
    return stub.mint_access_token(tenant_id=TENANT, object_id=new_id())


def accepted(tokens: TokenValidator, token: str) -> bool:
    try:
        tokens.authenticate(token)
    except AuthenticationError:
        return False
    return True


def test_rotated_key_is_picked_up_with_one_refetch(stub: EntraStub) -> None:
    clock = ManualClock(start=1000.0)
    tokens = validator(stub, keys=keys(stub, clock))
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 1
    clock.now += 31  # past the cooldown of the first fetch
    stub.rotate_keys(TENANT)  # the new key signs; the old one stays published
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 2
    assert all(accepted(tokens, user_token(stub)) for _ in range(5))
    assert stub.counters.jwks == 2


def test_retired_key_no_longer_verifies_after_the_refresh(stub: EntraStub) -> None:
    clock = ManualClock(start=1000.0)
    tokens = validator(stub, keys=keys(stub, clock, lifespan_seconds=60.0))
    old = user_token(stub)
    assert accepted(tokens, old)
    stub.rotate_keys(TENANT, keep_previous=False)
    clock.now += 61  # the scheduled refresh brings the key set without the retired key
    assert accepted(tokens, user_token(stub))
    assert not accepted(tokens, old)


def test_burst_of_unknown_key_ids_makes_at_most_one_fetch(stub: EntraStub) -> None:
    clock = ManualClock(start=1000.0)
    tokens = validator(stub, keys=keys(stub, clock))
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 1
    clock.now += 31
    stub.switches.jwks_delay_seconds = 0.3  # a slow endpoint, so the burst arrives while the fetch is in flight
    claims = jwt.decode(user_token(stub), options={"verify_signature": False})
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [jwt.encode(claims, forger, algorithm="RS256", headers={"kid": f"made-up-{i}"}) for i in range(24)]
    results: list[bool] = []
    threads = [threading.Thread(target=lambda t=token: results.append(accepted(tokens, t))) for token in forged]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [False] * len(forged)
    assert stub.counters.jwks == 2, "one fetch for the whole burst"
    assert not accepted(tokens, forged[0]) and stub.counters.jwks == 2  # still within the cooldown
    clock.now += 31
    assert not accepted(tokens, forged[0]) and stub.counters.jwks == 3  # one more per cooldown, no more


def test_last_good_key_set_is_served_while_refresh_fails_until_its_maximum_age(stub: EntraStub) -> None:
    clock = ManualClock(start=1000.0)
    tokens = validator(
        stub, keys=keys(stub, clock, lifespan_seconds=60.0, cooldown_seconds=10.0, max_age_seconds=300.0)
    )
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 1
    stub.switches.jwks_status = 503
    clock.now += 61  # the scheduled refresh is due and fails
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 2
    clock.now += 5  # within the cooldown: no new attempt, the last good set still serves
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 2
    clock.now += 230  # 296 s old: still within the maximum age
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 3
    clock.now += 10  # 306 s old: past the maximum age, every token is refused
    with pytest.raises(AuthenticationError, match="unavailable"):
        tokens.authenticate(user_token(stub))
    stub.switches.jwks_status = None
    clock.now += 10  # the identity provider is back: the next attempt restores service
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 5


def test_unreachable_key_endpoint_at_start_fails_closed_and_retries_once_per_cooldown(stub: EntraStub) -> None:
    clock = ManualClock(start=1000.0)
    tokens = validator(stub, keys=keys(stub, clock))
    stub.switches.jwks_status = 500
    for _ in range(5):
        with pytest.raises(AuthenticationError, match="unavailable"):
            tokens.authenticate(user_token(stub))
    assert stub.counters.jwks == 1
    stub.switches.jwks_status = None
    clock.now += 31
    assert accepted(tokens, user_token(stub)) and stub.counters.jwks == 2


def test_key_endpoint_certificate_from_another_ca_is_refused(stub: EntraStub) -> None:
    # Without the stub's CA pinned, the system trust store (REQUESTS_CA_BUNDLE, SSL_CERT_FILE) cannot vouch for it.
    tokens = validator(stub, keys=JwksKeys(url=stub.jwks_url))
    with pytest.raises(AuthenticationError, match="unavailable"):
        tokens.authenticate(user_token(stub))


@pytest.mark.parametrize(
    "settings",
    [
        {"lifespan_seconds": 0.0},
        {"lifespan_seconds": 100.0, "max_age_seconds": 50.0},
        {"cooldown_seconds": -1.0},
    ],
)
def test_inconsistent_jwks_timings_are_refused(stub: EntraStub, settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwksKeys(url=stub.jwks_url, **settings)
