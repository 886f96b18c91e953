"""The adapters against the sandbox over real HTTPS: msal tokens, PATCH, paging, $batch, WhoAmI,
faults, credential rotation, FCM and the webhook, all built by the production factories."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from hlfsync.core.errors import AuthFailure, Permanent, Throttled, Transient
from hlfsync.dynamics import factory
from hlfsync.dynamics.port import DynamicsClient, ListingChange, Operation
from hlfsync.notify import payloads
from hlfsync.notify.base import DeliveryOutcome
from hlfsync.notify.factory import build_notifier
from hlfsync.notify.fcm import FcmNotifier
from hlfsync.settings import Settings
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import Contract, SandboxServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """The adapters run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the module, over HTTPS with its own CA."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[AdminClient]:
    """The control client, with the sandbox reset before each test."""
    client = sandbox.admin()
    client.reset()
    yield client
    client.clear_faults()


def settings_for(
    sandbox: SandboxServer, contract: Contract = "dataverse-v9", **extra: object
) -> Settings:
    values: dict[str, object] = {
        key.removeprefix("HLFSYNC_").lower(): value for key, value in sandbox.env(contract).items()
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[DynamicsClient]:
    """A client built by the production factory, closed on the way out."""
    built = factory.build_client(settings)
    try:
        yield built
    finally:
        await built.aclose()


def change(contact_id: UUID, operation: Operation = "remove") -> ListingChange:
    return ListingChange(
        mentor_id=uuid4(),
        contact_id=contact_id,
        operation=operation,
        idempotency_key=f"sq-{uuid4()}",
        occurred_at=datetime.now(UTC),
        correlation_id=f"corr-{uuid4()}",
    )


def seed(admin: AdminClient, count: int, listed: bool = True) -> list[UUID]:
    ids = [uuid4() for _ in range(count)]
    admin.put_contacts([{"contactid": str(i), "listed": listed} for i in ids])
    return ids


def listed(admin: AdminClient) -> dict[UUID, bool]:
    return {UUID(c["contactid"]): c["listed"] for c in admin.contacts()}


async def test_who_am_i_with_a_real_msal_token(sandbox: SandboxServer, admin: AdminClient) -> None:
    """msal fetches a token from the local authority and WhoAmI accepts it."""
    async with opened(settings_for(sandbox)) as client:
        identity = await client.who_am_i()
        assert identity.user_id
        kinds = [r["kind"] for r in admin.requests()]
        assert "discovery" in kinds
        assert "token" in kinds


async def test_patch_changes_the_listing_and_carries_the_correlation_id(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """remove unlists and restore relists; the sandbox logs our correlation id."""
    async with opened(settings_for(sandbox)) as client:
        (contact,) = seed(admin, 1)
        removal = change(contact, "remove")
        await client.apply(removal)
        assert listed(admin)[contact] is False
        await client.apply(change(contact, "restore"))
        assert listed(admin)[contact] is True
        patches = admin.requests(method="PATCH")
        assert patches[0]["correlation_id"] == removal.correlation_id


async def test_an_unknown_contact_is_permanent_and_never_created(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """If-Match: * turns a PATCH to an unknown contact into a 404, and nothing is created."""
    async with opened(settings_for(sandbox)) as client:
        ghost = uuid4()
        with pytest.raises(Permanent) as caught:
            await client.apply(change(ghost))
        assert caught.value.status == 404
        assert ghost not in listed(admin)


async def test_listings_page_through_every_contact(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """Seven contacts in pages of three come back complete, in three GETs."""
    async with opened(settings_for(sandbox)) as client:
        ids = seed(admin, 4, listed=True) + seed(admin, 3, listed=False)
        admin.clear_requests()
        pages = [page async for page in client.listings(3)]
        assert [len(page) for page in pages] == [3, 3, 1]
        seen = {row.contact_id: row.listed for page in pages for row in page}
        assert seen == listed(admin)
        assert set(ids) == set(seen)
        assert len(admin.requests(method="GET", kind="dataverse")) == 3


async def test_batch_applies_each_change_on_its_own(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """One $batch with an unknown contact in the middle: the others still apply."""
    async with opened(settings_for(sandbox)) as client:
        first, last = seed(admin, 2)
        results = await client.apply_many([change(first), change(uuid4()), change(last)])
        assert results[0] is None
        assert isinstance(results[1], Permanent)
        assert results[2] is None
        assert listed(admin) == {first: False, last: False}


async def test_injected_faults_are_classified(sandbox: SandboxServer, admin: AdminClient) -> None:
    """A 503 is Transient, a 429 is Throttled with its Retry-After, and nothing is retried."""
    async with opened(settings_for(sandbox)) as client:
        (contact,) = seed(admin, 1)
        admin.set_faults([{"method": "PATCH", "status": 503, "times": 1}])
        with pytest.raises(Transient):
            await client.apply(change(contact))
        admin.set_faults([{"method": "PATCH", "status": 429, "retry_after": 7, "times": 1}])
        with pytest.raises(Throttled) as caught:
            await client.apply(change(contact))
        assert caught.value.retry_after_s == 7.0
        assert len(admin.requests(method="PATCH")) == 2


async def test_a_hanging_server_is_a_transient_timeout(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """A request that gets no answer within the configured timeout is Transient."""
    (contact,) = seed(admin, 1)
    built = factory.build_client(settings_for(sandbox, dynamics_timeout=0.5))
    try:
        await built.who_am_i()  # fetch the token before the fault, so only the PATCH hangs
        admin.set_faults([{"method": "PATCH", "status": "timeout", "hang_s": 5, "times": 1}])
        with pytest.raises(Transient, match="timed out"):
            await built.apply(change(contact))
    finally:
        await built.aclose()


async def test_an_expired_token_is_refreshed_once(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """When the service stops accepting our token, one refresh and one resend recover."""
    async with opened(settings_for(sandbox)) as client:
        (contact,) = seed(admin, 1)
        await client.apply(change(contact, "restore"))
        assert admin.expire_tokens("entra") >= 1
        await client.apply(change(contact, "remove"))
        assert listed(admin)[contact] is False
        statuses = [r["status"] for r in admin.requests(method="PATCH")]
        assert statuses == [204, 401, 204]


async def test_a_rotated_secret_is_an_auth_failure_naming_the_aadsts_code(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """After rotation the old secret's token is refused and a new one cannot be had: AuthFailure."""
    async with opened(settings_for(sandbox)) as client:
        (contact,) = seed(admin, 1)
        old_secret = sandbox.client_secret
        await client.apply(change(contact))
        admin.rotate_secret(f"rotated-{uuid4()}")
        try:
            with pytest.raises(AuthFailure) as caught:
                await client.apply(change(contact, "restore"))
            assert caught.value.code == "AADSTS7000215"
            assert old_secret not in caught.value.summary()
            fresh = factory.build_client(settings_for(sandbox))
            try:
                await fresh.apply(change(contact, "restore"))
            finally:
                await fresh.aclose()
            assert listed(admin)[contact] is True
        finally:
            admin.rotate_secret(old_secret)


async def test_fcm_send_is_delivered_and_unregistered_tokens_are_reported(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """A push reaches the sandbox's FCM with exactly our data; an unregistered token says so."""
    notifier = build_notifier(settings_for(sandbox))
    assert isinstance(notifier, FcmNotifier)
    try:
        data = payloads.build_alert_data(uuid4(), "remove")
        result = await notifier.send("device-1", data)
        assert result.outcome is DeliveryOutcome.DELIVERED
        (message,) = admin.fcm_messages()
        assert message["token"] == "device-1"
        assert message["data"] == data
        admin.unregister_tokens(["device-2"])
        assert (await notifier.send("device-2", data)).outcome is DeliveryOutcome.UNREGISTERED
    finally:
        await notifier.aclose()


async def test_webhook_events_are_verified_and_applied(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """The sandbox's receiver verifies our signature and applies the event."""
    (contact,) = seed(admin, 1)
    webhook = factory.build_client(settings_for(sandbox, "webhook-v1"))
    try:
        await webhook.apply(change(contact, "remove"))
    finally:
        await webhook.aclose()
    assert listed(admin)[contact] is False


async def test_webhook_with_a_wrong_secret_is_an_auth_failure(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """A signature made with the wrong secret is refused: AuthFailure."""
    (contact,) = seed(admin, 1)
    webhook = factory.build_client(
        settings_for(sandbox, "webhook-v1", dynamics_webhook_secret="not-the-secret")
    )
    try:
        with pytest.raises(AuthFailure):
            await webhook.apply(change(contact))
    finally:
        await webhook.aclose()


async def test_webhook_health_check_is_a_signed_ping(
    sandbox: SandboxServer, admin: AdminClient
) -> None:
    """who_am_i on webhook-v1 is a signed ping the receiver answers with a 2xx."""
    webhook = factory.build_client(settings_for(sandbox, "webhook-v1"))
    try:
        assert (await webhook.who_am_i()).user_id.startswith("webhook:")
    finally:
        await webhook.aclose()
