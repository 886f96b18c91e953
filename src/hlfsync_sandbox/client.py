"""`AdminClient`: the `/_sandbox/` control API from Python, typed, for tests, demo and benchmarks.

Owns nothing but the calls; every method is one HTTP request and raises `httpx.HTTPStatusError`
when the sandbox refuses it (a bad fault rule answers 422 with the reason).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypedDict, cast

import httpx

from hlfsync_sandbox import faults


class ContactRecord(TypedDict, total=False):
    contactid: str
    listed: bool
    version: int


class RequestRecord(TypedDict):
    method: str
    path: str
    status: int  # 0: no complete response (an injected timeout or reset)
    at: float
    kind: str  # dataverse | token | discovery | fcm | webhook | other
    query: str
    contactid: str | None
    correlation_id: str | None
    duration_ms: float
    fault: str | None  # "rule:<index>" or "rate_limit" when a fault answered
    in_batch: bool
    listed: bool | None


class FcmRecord(TypedDict):
    token: str
    data: dict[str, str]
    at: float
    name: str
    message: dict[str, Any]


Rule = faults.FaultRule | Mapping[str, Any]


class AdminClient:
    """A small synchronous client; close it (or use `with`) when done."""

    def __init__(
        self, base_url: str, *, verify: ssl.SSLContext | str | bool = True, timeout_s: float = 30.0
    ) -> None:
        if isinstance(verify, str):  # a CA bundle path; httpx deprecates passing it as a string
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(base_url=f"{base_url}/_sandbox", verify=verify, timeout=timeout_s)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    # Contacts
    def contacts(self) -> list[ContactRecord]:
        return cast(list[ContactRecord], self._call("GET", "/contacts"))

    def put_contacts(self, contacts: Iterable[Mapping[str, Any]]) -> int:
        """Create or replace contacts (`contactid`, `listed`, optional plain attributes)."""
        rows = [{**row, "contactid": str(row["contactid"])} for row in contacts]
        return int(self._call("POST", "/contacts", json=rows)["count"])

    def delete_contacts(self) -> None:
        self._call("DELETE", "/contacts")

    # Logs
    def requests(
        self, since: float | None = None, *, kind: str | None = None, method: str | None = None
    ) -> list[RequestRecord]:
        params = {
            key: value
            for key, value in (("since", since), ("kind", kind), ("method", method))
            if value is not None
        }
        return cast(list[RequestRecord], self._call("GET", "/requests", params=params))

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/stats"))

    # FCM
    def fcm_messages(self) -> list[FcmRecord]:
        return cast(list[FcmRecord], self._call("GET", "/fcm"))

    def clear_fcm_messages(self) -> None:
        self._call("DELETE", "/fcm")

    def unregister_tokens(self, tokens: Iterable[str]) -> None:
        self._call("POST", "/fcm/unregistered", json={"tokens": list(tokens)})

    # Faults
    def set_faults(
        self,
        rules: Sequence[Rule] = (),
        *,
        latency_ms: float = 0.0,
        rate_limit_per_s: float | None = None,
        auth: Literal["ok", "reject"] = "ok",
        fcm_auth: Literal["ok", "reject"] = "ok",
        read_lag_ms: float = 0.0,
        seed: int | None = None,
        service_protection: dict[str, Any] | Literal["default"] | None = "default",
        drift: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Replace the whole fault set-up (what is not given goes back to its default).

        `service_protection`: Dataverse's limits as the sandbox emulates them by default; a dict
        overrides them (`requests`, `execution_ms`, `window_s`, `penalty_s`), None turns them off.
        `drift`: contract drift (`listing_field`, `entity_set` renamed; `webhook`: `gone` or
        `not_found`), undone by the next set-up or `clear_faults()`.
        """
        body: dict[str, Any] = {
            "rules": [
                rule.model_dump(mode="json", exclude_none=True)
                if isinstance(rule, faults.FaultRule)
                else {k: str(v) if k == "contactid" else v for k, v in rule.items()}
                for rule in rules
            ],
            "latency_ms": latency_ms,
            "rate_limit_per_s": rate_limit_per_s,
            "auth": auth,
            "fcm_auth": fcm_auth,
            "read_lag_ms": read_lag_ms,
            "seed": seed,
            "drift": drift,
        }
        if service_protection != "default":
            body["service_protection"] = service_protection
        return cast(dict[str, Any], self._call("POST", "/faults", json=body))

    def faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # Credentials and settings
    def rotate_secret(self, new: str) -> None:
        """Accept only `new` from now on; every Entra token issued before is revoked."""
        self._call("POST", "/credentials", json={"client_secret": new})

    def rotate_credentials(self, **changes: str) -> list[str]:
        """Change any of tenant_id, client_id, client_secret, webhook_secret."""
        return cast(list[str], self._call("POST", "/credentials", json=changes)["rotated"])

    def settings(self, **changes: str | float) -> dict[str, Any]:
        """Read (and with arguments, change) entity_set, listing_field, token_ttl_s."""
        method = "POST" if changes else "GET"
        return cast(dict[str, Any], self._call(method, "/settings", json=changes or None))

    def expire_tokens(self, audience: Literal["entra", "google"] | None = None) -> int:
        return int(self._call("POST", "/tokens/expire", json={"audience": audience})["expired"])

    def reset(self) -> None:
        self._call("POST", "/reset")
