"""`dataverse-v9`: the Dataverse Web API adapter (PATCH, WhoAmI, paged GET, `$batch`).

Owns the HTTP conversation: headers, one token refresh on a 401, paging and batching. Retries
nothing else (retries are durable and belong to the engine), follows no redirect, logs no token.
Wire details live in `wire`, classification in `errors`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import httpx
import structlog

from hlfsync.core.errors import (
    ContractFailure,
    Held,
    NotRun,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
)
from hlfsync.dataverse import wire
from hlfsync.dataverse.auth import Tokens
from hlfsync.dynamics.port import (
    ContactListing,
    HealthCheck,
    Identity,
    ListingChange,
    WriteProbe,
)
from hlfsync.outbound import errors
from hlfsync.outbound.transport import unbound

log = structlog.get_logger(__name__)

CONTRACT = "dataverse-v9"
PROBE_TTL_S = 30.0  # how long one known-good probe's verdict stands for later 404s


class DataverseClient:
    """A `DynamicsClient` over the Dataverse Web API. Takes ownership of `http` and `tokens`."""

    contract = CONTRACT

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: Tokens,
        org_url: str,
        *,
        entity_set: str = "contacts",
        id_field: str = "contactid",
        listing_field: str = "hlf_listedonwebsite",
        api_version: str = "v9.2",
        batch_size: int = 100,
        timeout_s: float | None = None,
        alternate_key: str | None = None,
    ) -> None:
        if not 1 <= batch_size <= wire.MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be within 1..{wire.MAX_BATCH_SIZE}")
        self._http = http
        self._tokens = tokens
        self._org_url = org_url.rstrip("/")
        self._root = wire.api_root(self._org_url, api_version)
        self._entity_set = entity_set
        self._id_field = id_field
        # The health check's write probe is a real PATCH: who it wrote, for the audit log.
        self._write_probe: WriteProbe | None = None
        self._listing_field = listing_field
        self._batch_size = batch_size
        self.max_batch = batch_size
        self._timeout: httpx.Timeout | None = httpx.Timeout(timeout_s) if timeout_s else None
        self.skipped_rows = 0  # listing rows without a usable id or value, since construction
        self._alternate_key = alternate_key
        # The last known-good probe's verdict and when (monotonic s): a burst of 404s asks once.
        self._probe_verdict: tuple[float, SyncFailure | None] | None = None

    def __repr__(self) -> str:
        return f"DataverseClient(org_url={self._org_url!r})"

    async def apply(self, change: ListingChange) -> uuid.UUID | None:
        """PATCH the contact's listing field; `If-Match: *` so a missing contact is a 404.

        A change without a contact id names the contact by the alternate key and asks for the
        contactid back (`return=representation`), which this returns.
        """
        headers = {
            **self._write_headers(),
            "If-Match": "*",
            wire.CORRELATION_HEADER: change.correlation_id,
        }
        if change.contact_id is not None:
            url = wire.record_url(self._root, self._entity_set, change.contact_id)
        else:
            url = f"{self._key_url(change)}?$select={self._id_field}"
            headers["Prefer"] = "return=representation"
        body = wire.listing_body(self._listing_field, change.listed)
        response = await self._send("PATCH", url, headers, body, change.correlation_id)
        failure = errors.check_write(response.status_code, response.headers, response.content)
        if failure is not None:
            raise await self._with_evidence(failure)
        if change.contact_id is not None:
            return None
        return self._learned_id(response)

    def credential_checks(self) -> list[HealthCheck]:
        return [("token", self.check_token)]

    def contract_checks(self) -> list[HealthCheck]:
        return [
            ("entity_set", self.check_entity_set),
            ("listing_field", self.probe),
            ("writable", self.check_writable),
        ]

    def take_write_probe(self) -> WriteProbe | None:
        probe, self._write_probe = self._write_probe, None
        return probe

    async def check_token(self) -> str:
        """A token from the authority (never shown): proves the app registration and secret."""
        await self._tokens.token()
        return "token acquired"

    async def check_entity_set(self) -> str:
        """GET <entity set>?$select=<id>&$top=1: the entity set exists and can be listed."""
        await self._get_one(f"$select={self._id_field}")
        return f"{self._entity_set} exists"

    async def check_writable(self) -> str:
        """Write one contact's listing field with the value it already has, guarded by its
        etag: proves the write privilege and the field's type, and changes nothing (a
        concurrent change wins with a 412, which proves the same)."""
        row = await self._get_one(f"$select={self._id_field},{self._listing_field}")
        if row is None:
            return "skipped: no contact to write"
        raw_id, etag = row.get(self._id_field), row.get("@odata.etag")
        listed = row.get(self._listing_field)
        if not isinstance(raw_id, str) or not isinstance(etag, str):
            return "skipped: the row has no id or etag"
        url = wire.record_url(self._root, self._entity_set, uuid.UUID(raw_id))
        correlation_id = str(uuid.uuid4())
        headers = {**self._write_headers(), "If-Match": etag,
                   wire.CORRELATION_HEADER: correlation_id}  # fmt: skip
        body = wire.listing_body(self._listing_field, bool(listed))
        self._write_probe = WriteProbe(correlation_id, raw_id)
        response = await self._send("PATCH", url, headers, body, correlation_id)
        if response.status_code == 412:
            return f"{self._listing_field} writable (row changed meanwhile: 412)"
        failure = errors.check_write(response.status_code, response.headers, response.content)
        if failure is not None:
            raise failure
        return f"{self._listing_field} writable (same value written back)"

    async def _get_one(self, select: str) -> dict[str, object] | None:
        correlation_id = str(uuid.uuid4())
        headers = {**wire.ODATA_HEADERS, wire.CORRELATION_HEADER: correlation_id}
        url = f"{self._root}/{self._entity_set}?{select}&$top=1"
        response = await self._send("GET", url, headers, None, correlation_id)
        doc = errors.read_json(response.status_code, response.headers, response.content)
        rows = doc.get("value") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise errors.contract_violation("listing", "no `value` array", response.status_code)
        first = rows[0] if rows else None
        return first if isinstance(first, dict) else None

    async def probe(self) -> str:
        """GET <entity set>?$select=<listing field>&$top=1: the entity set and the field exist
        and can be read. Raises the classified failure (ContractFailure when they do not)."""
        correlation_id = str(uuid.uuid4())
        headers = {**wire.ODATA_HEADERS, wire.CORRELATION_HEADER: correlation_id}
        url = wire.probe_url(self._root, self._entity_set, self._listing_field)
        response = await self._send("GET", url, headers, None, correlation_id)
        doc = errors.read_json(response.status_code, response.headers, response.content)
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
            raise errors.contract_violation("probe", "no `value` array", response.status_code)
        self._probe_verdict = (time.monotonic(), None)
        return f"{self._entity_set}?$select={self._listing_field} readable"

    async def apply_many(self, changes: Sequence[ListingChange]) -> list[Exception | None]:
        """One `$batch` per `batch_size` changes, each its own request (no changeset), so one bad
        contact fails alone. A batch-wide Throttled or Held failure is given to the rest unsent."""
        results: list[Exception | None] = []
        stop: SyncFailure | None = None
        for start in range(0, len(changes), self._batch_size):
            chunk = changes[start : start + self._batch_size]
            if stop is not None:
                results += [stop] * len(chunk)
                continue
            try:
                results += await self._batch(chunk)
            except SyncFailure as failure:
                results += [failure] * len(chunk)
                if isinstance(failure, Throttled | Held):
                    stop = failure
        return results

    async def who_am_i(self) -> Identity:
        """GET WhoAmI: proves the token works against this organisation."""
        correlation_id = str(uuid.uuid4())
        headers = {**wire.ODATA_HEADERS, wire.CORRELATION_HEADER: correlation_id}
        response = await self._send(
            "GET", wire.who_am_i_url(self._root), headers, None, correlation_id
        )
        doc = errors.read_json(response.status_code, response.headers, response.content)
        try:
            return wire.parse_who_am_i(doc)
        except wire.WireError as exc:
            raise errors.contract_violation("WhoAmI", str(exc), response.status_code) from None

    async def listings(self, page_size: int) -> AsyncIterator[list[ContactListing]]:
        """Every contact's listing, page by page, following `@odata.nextLink` within the org."""
        url: str | None = wire.listing_url(
            self._root, self._entity_set, self._id_field, self._listing_field
        )
        prefer = wire.max_page_size_header(page_size)
        seen: set[str] = set()
        while url is not None:
            seen.add(url)
            correlation_id = str(uuid.uuid4())
            headers = {**wire.ODATA_HEADERS, **prefer, wire.CORRELATION_HEADER: correlation_id}
            response = await self._send("GET", url, headers, None, correlation_id)
            doc = errors.read_json(response.status_code, response.headers, response.content)
            try:
                page = wire.parse_page(doc, self._id_field, self._listing_field)
            except wire.WireError as exc:
                raise errors.contract_violation("page", str(exc), response.status_code) from None
            if page.skipped:
                self.skipped_rows += page.skipped
                log.warning("dataverse.listings.skipped_rows", count=page.skipped)
            if page.next_link is not None and not wire.same_origin(page.next_link, self._org_url):
                raise errors.contract_violation("page", "@odata.nextLink leaves the organisation")
            if page.next_link in seen:
                raise errors.contract_violation("page", "@odata.nextLink repeats a page")
            # Not kept across the yield: the parsed document and the body would live while the
            # caller works on the page.
            del response, doc
            if page.rows:
                yield page.rows
            url = page.next_link

    async def aclose(self) -> None:
        await self._http.aclose()
        self._tokens.close()

    # -- the conversation --------------------------------------------------------------------

    def _write_headers(self) -> dict[str, str]:
        return {**wire.ODATA_HEADERS, "Content-Type": "application/json"}

    def _key_url(self, change: ListingChange) -> str:
        if self._alternate_key is None or not change.key_value:
            raise Permanent("mentor has no Dynamics contact id and no alternate key value")
        return wire.key_url(self._root, self._entity_set, self._alternate_key, change.key_value)

    def _learned_id(self, response: httpx.Response) -> uuid.UUID:
        doc: object = None
        if errors.is_json(response.headers) and response.content.strip():
            try:
                doc = json.loads(response.content)
            except ValueError:
                doc = None
        contact_id = wire.contact_id_from(response.headers, doc, self._id_field)
        if contact_id is None:
            raise errors.contract_violation(
                "alternate-key write", "answer names no contactid", response.status_code
            )
        return contact_id

    async def _with_evidence(self, failure: SyncFailure) -> SyncFailure:
        """A 404 about one contact stays Permanent only if the known-good probe passes; when the
        probe fails too, the contract is broken for everyone and the operation is held."""
        if not errors.is_missing_record(failure):
            return failure
        verdict = self._probe_verdict
        if verdict is None or time.monotonic() - verdict[0] > PROBE_TTL_S:
            try:
                await self.probe()
                verdict = (time.monotonic(), None)
            except ContractFailure as contract_broken:
                verdict = (time.monotonic(), contract_broken)
            except SyncFailure:
                return failure  # the probe proved nothing either way
            self._probe_verdict = verdict
        broken = verdict[1]
        if broken is None:
            return failure
        return ContractFailure(
            f"{failure.detail}; and the probe failed: {broken.detail}",
            status=broken.status,
            code=broken.code,
        )

    async def _batch(self, chunk: Sequence[ListingChange]) -> list[Exception | None]:
        if any(change.contact_id is None for change in chunk):
            raise ValueError("$batch changes need a contact id; send alternate-key changes alone")
        requests = [
            wire.BatchRequest(
                method="PATCH",
                url=wire.record_url(self._root, self._entity_set, change.contact_id),  # type: ignore[arg-type]
                headers={
                    "Content-Type": "application/json",
                    "If-Match": "*",
                    wire.CORRELATION_HEADER: change.correlation_id,
                },
                body=wire.listing_body(self._listing_field, change.listed),
            )
            for change in chunk
        ]
        content_type, body = wire.build_batch(requests, f"batch_{uuid.uuid4().hex}")
        correlation_id = str(uuid.uuid4())
        headers = {
            **wire.ODATA_HEADERS,
            "Content-Type": content_type,
            # Without it Dataverse stops at the first failed request and skips the rest.
            "Prefer": "odata.continue-on-error",
            wire.CORRELATION_HEADER: correlation_id,
        }
        response = await self._send(
            "POST", wire.batch_url(self._root), headers, body, correlation_id
        )
        content_type = response.headers.get("content-type", "")
        failure = errors.classify_response(response.status_code, response.headers, response.content)
        if failure is not None and not content_type.lower().startswith("multipart/"):
            if isinstance(failure, Permanent):
                # Refused whole, with no part answered: the batch itself (URL, framing, size)
                # does not fit the service, which is wrong for every change in it.
                raise ContractFailure(f"$batch refused whole: {failure.detail}",
                                      status=failure.status, code=failure.code)  # fmt: skip
            raise failure
        # A non-2xx multipart answer is Dataverse stopping at its first failed part (no
        # continue-on-error applied): the parts before it ran, the parts after it never did.
        try:
            answers = wire.parse_batch(content_type, response.content)
        except wire.WireError as exc:
            log.warning(
                "dataverse.batch.unparsable", reason=str(exc), correlation_id=correlation_id
            )
            unknown = Transient(
                f"$batch answer could not be read: {exc}", status=response.status_code
            )
            return [unknown] * len(chunk)
        matched = wire.match_batch(len(chunk), answers)
        return [await self._outcome(answer) for answer in matched]

    async def _outcome(self, answer: wire.BatchResponse | None) -> Exception | None:
        if answer is None:
            return NotRun("not run: the $batch stopped before this change")
        failure = errors.check_write(answer.status, answer.headers, answer.body)
        return None if failure is None else await self._with_evidence(failure)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        correlation_id: str,
    ) -> httpx.Response:
        """Send with a bearer token; on a 401, drop the token and send once more, no more."""
        token = await self._tokens.token()
        response = await self._once(
            method, url, headers=headers, body=body, token=token, correlation_id=correlation_id
        )
        if response.status_code == 401:
            self._tokens.invalidate(token)
            token = await self._tokens.token()
            response = await self._once(
                method, url, headers=headers, body=body, token=token, correlation_id=correlation_id
            )
        return response

    async def _once(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None,
        token: str,
        correlation_id: str,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            url,
            headers={**headers, "Authorization": f"Bearer {token}"},
            content=body,
            timeout=self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        started = time.perf_counter()
        path = httpx.URL(url).path
        try:
            response = await self._http.send(request, follow_redirects=False)
        except httpx.HTTPError as exc:
            failure = errors.classify_exception(exc)
            log.warning(
                "dataverse.call.failed",
                method=method,
                path=path,
                correlation_id=correlation_id,
                failure=failure.summary(),
            )
            raise failure from None  # the httpx error holds the request, and so the token
        log.debug(
            "dataverse.call",
            method=method,
            path=path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            correlation_id=correlation_id,
        )
        return unbound(response)
