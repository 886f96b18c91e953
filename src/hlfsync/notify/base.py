"""The `Notifier` interface (push delivery) and `DeliveryResult`, what one send attempt came to.

The alert dispatcher knows nothing else of FCM. A `send` never raises for a delivery problem: every
outcome, network failures included, comes back as a `DeliveryResult` the dispatcher can store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class DeliveryOutcome(StrEnum):
    """What the dispatcher does next with the alert's delivery."""

    DELIVERED = "delivered"  # done; `message_name` is the provider's id for it
    UNREGISTERED = "unregistered"  # the device token is dead: remove it, do not retry
    RETRY = "retry"  # may pass: try again, not before `retry_after_s` when given
    REJECTED = "rejected"  # this message can never be delivered as it is: investigate
    AUTH = "auth"  # our push credentials are refused: hold deliveries, alert the operators
    PAUSED = "paused"  # the push channel is unusable (token endpoint down): hold, spend nothing
    STORED = "stored"  # no push channel configured: the alert is stored and logged only


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One send attempt's outcome. `reason` is one line for the alert row; never a secret."""

    outcome: DeliveryOutcome
    message_name: str | None = None
    retry_after_s: float | None = None  # None: no hint from the provider, use your own backoff
    reason: str | None = None
    status: int | None = None

    @property
    def final(self) -> bool:
        """True when nothing more will ever happen to this delivery without a person."""
        return self.outcome not in (
            DeliveryOutcome.RETRY,
            DeliveryOutcome.AUTH,
            DeliveryOutcome.PAUSED,
        )

    @property
    def holds_channel(self) -> bool:
        """True when the outcome is about the push channel, not this message: hold them all."""
        return self.outcome in (DeliveryOutcome.AUTH, DeliveryOutcome.PAUSED)

    @classmethod
    def delivered(cls, message_name: str | None) -> DeliveryResult:
        return cls(DeliveryOutcome.DELIVERED, message_name=message_name)

    @classmethod
    def unregistered(cls, reason: str, status: int | None = None) -> DeliveryResult:
        return cls(DeliveryOutcome.UNREGISTERED, reason=reason, status=status)

    @classmethod
    def retry(
        cls, reason: str, *, retry_after_s: float | None = None, status: int | None = None
    ) -> DeliveryResult:
        return cls(DeliveryOutcome.RETRY, retry_after_s=retry_after_s, reason=reason, status=status)

    @classmethod
    def rejected(cls, reason: str, status: int | None = None) -> DeliveryResult:
        return cls(DeliveryOutcome.REJECTED, reason=reason, status=status)

    @classmethod
    def auth(cls, reason: str, status: int | None = None) -> DeliveryResult:
        return cls(DeliveryOutcome.AUTH, reason=reason, status=status)

    @classmethod
    def paused(cls, reason: str, *, retry_after_s: float | None = None) -> DeliveryResult:
        return cls(DeliveryOutcome.PAUSED, retry_after_s=retry_after_s, reason=reason)

    @classmethod
    def stored(cls) -> DeliveryResult:
        return cls(DeliveryOutcome.STORED, reason="push delivery is not configured")


class Notifier(Protocol):
    """Sends one data-only push to one device token."""

    async def send(
        self, token: str, data: dict[str, str], *, collapse_key: str | None = None
    ) -> DeliveryResult:
        """Deliver `data` (string values only) to the device `token`; never raises for delivery.

        Pushes with the same `collapse_key` replace each other on a device that was offline.
        """
        ...
