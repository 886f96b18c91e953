"""The one small interface every Dynamics adapter implements, and the values it speaks in.

The sync engine knows nothing else of Dynamics. Every method raises only `core.errors.SyncFailure`
subclasses (classified once, by `outbound.errors`); anything else is a bug in the adapter and the
engine treats it as a poison operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

Operation = Literal["remove", "restore"]


@dataclass(frozen=True, slots=True)
class ListingChange:
    """What the website listing of one mentor's contact must become."""

    mentor_id: UUID
    contact_id: UUID | None  # None: address the contact by `key_value` (an alternate key)
    operation: Operation
    idempotency_key: str  # the sync_queue id: the same operation always carries the same key
    occurred_at: datetime  # when the status change was committed
    correlation_id: str  # sent as a header and logged, so one attempt can be traced end to end
    key_value: str | None = None  # the alternate key's value, for a mentor without a contact id

    @property
    def listed(self) -> bool:
        return self.operation == "restore"


@dataclass(frozen=True, slots=True)
class ContactListing:
    """One contact as Dynamics lists it, for reconciliation."""

    contact_id: UUID
    listed: bool


@dataclass(frozen=True, slots=True)
class Identity:
    """What `WhoAmI` answers: proof that the token works against the organisation."""

    user_id: str
    organization_id: str | None = None


# One named step of the health check: what it proved, or the classified SyncFailure.
HealthCheck = tuple[str, Callable[[], Awaitable[str]]]


@dataclass(frozen=True, slots=True)
class WriteProbe:
    """A write the health check made to Dynamics: every write leaves an audit row."""

    correlation_id: str
    contact_id: str


class DynamicsClient(Protocol):
    """A versioned contract with HLF's portal (`HLFSYNC_DYNAMICS_CONTRACT`)."""

    contract: str
    # Changes one `apply_many` call sends in one request (1 when the contract has no batch).
    max_batch: int

    async def apply(self, change: ListingChange) -> UUID | None:
        """Make the contact's listing what `change` says. Idempotent. Raises SyncFailure.

        Returns the contact id Dynamics answered with when `change` named the contact by its
        alternate key (so it can be stored), else None.
        """

    async def apply_many(self, changes: Sequence[ListingChange]) -> list[Exception | None]:
        """Apply several changes (one `$batch` where the contract has one); one result each.

        Results are in the order of `changes`: None where the change applied, else the
        classified SyncFailure for that change alone. Never raises for one change's failure.
        """

    async def who_am_i(self) -> Identity:
        """Fetch a token and check it against the service: the credential health check."""

    async def probe(self) -> str:
        """The known-good probe of the contract (entity set and listing field readable);
        returns what it proved, raises the classified SyncFailure (ContractFailure when the
        contract is broken)."""

    def credential_checks(self) -> list[HealthCheck]:
        """The health check's steps before WhoAmI (the credentials alone), in order."""

    def contract_checks(self) -> list[HealthCheck]:
        """The health check's steps after WhoAmI (the contract: fields, write privilege)."""

    def take_write_probe(self) -> WriteProbe | None:
        """The write the last contract check made, once (None: it made none)."""

    def listings(self, page_size: int) -> AsyncIterator[list[ContactListing]]:
        """Every contact's listing state, one page at a time, so memory stays flat.

        A contract without a read API raises `Permanent(code="unsupported")` on the first
        iteration rather than yielding nothing, which would read as "nobody is listed".
        """

    async def aclose(self) -> None:
        """Release connections."""
