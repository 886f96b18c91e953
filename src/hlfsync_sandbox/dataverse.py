"""The Dataverse Web API rules for contacts and WhoAmI, as plain functions over a `ContactView`.

Owns dispatch and write semantics (If-Match, upsert, payload checks, OData errors); reads and
paging are in `reads`. It does no authentication, faults or `$batch` framing: `webapi` and `batch`
call `handle` once per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from hlfsync_sandbox import contacts, reads, wire
from hlfsync_sandbox.requestlog import LogEntry
from hlfsync_sandbox.state import SandboxState

API_ROOT = reads.API_ROOT

_TARGET = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?")


@dataclass(frozen=True, slots=True)
class WebRequest:
    """One Web API request, from the socket or from inside a `$batch`."""

    method: str
    target: str  # the path after /api/data/v9.2/, decoded
    query: str  # the raw query string
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str  # https://host:port, for absolute links


def handle(
    state: SandboxState, view: contacts.ContactView, request: WebRequest, entry: LogEntry
) -> wire.Reply:
    """Answer one Web API request against `view` (the live table or a change set)."""
    try:
        return _dispatch(state, view, request, entry)
    except wire.Refusal as refusal:
        return refusal.reply


def _dispatch(
    state: SandboxState, view: contacts.ContactView, request: WebRequest, entry: LogEntry
) -> wire.Reply:
    method, target = request.method, request.target
    if target == "WhoAmI":
        _allow(method, "GET")
        return who_am_i(state, request.base_url)
    match = _TARGET.fullmatch(target)
    if match is None or match.group(1) != state.entity_set:
        segment = target.split("(", 1)[0]
        raise wire.Refusal(
            wire.odata_error(
                404, wire.DV_NO_SEGMENT, f"Resource not found for the segment '{segment}'."
            )
        )
    key = match.group(2)
    if key is None:
        _allow(method, "GET")
        return reads.list_contacts(state, view, request)
    contactid = _resolve_key(state, view, key)
    entry.contactid = contactid
    _allow(method, "GET", "PATCH")
    if method == "PATCH":
        return patch_contact(state, view, contactid, request, entry)
    return reads.get_contact(state, view, contactid, request)


_ALTERNATE_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)='((?:[^']|'')*)'")


def _resolve_key(state: SandboxState, view: contacts.ContactView, key: str) -> str:
    """The contactid a key segment names: a GUID, or `<alternate key>='<value>'` (quotes
    doubled inside); an alternate key matching no row is a 404, as with Dataverse."""
    alternate = _ALTERNATE_KEY.fullmatch(key.strip())
    if alternate is None:
        try:
            return contacts.canonical_id(key)
        except ValueError:
            raise wire.Refusal(
                wire.odata_error(
                    400, wire.DV_BAD_SYNTAX, f"Bad Request - Error in query syntax: key '{key}'."
                )
            ) from None
    name, value = alternate.group(1), alternate.group(2).replace("''", "'")
    if name not in state.settings.alternate_keys:
        raise wire.Refusal(
            wire.odata_error(
                400,
                wire.DV_BAD_SYNTAX,
                f"Invalid key '{name}': no alternate key of entity "
                f"'{state.entity_set.removesuffix('s')}' has this attribute.",
            )
        )
    found = state.contacts.find(name, value)
    if found is None:
        raise wire.Refusal(
            wire.odata_error(
                404,
                wire.DV_NOT_FOUND,
                f"A record with the specified key values does not exist in "
                f"{state.entity_set.removesuffix('s')} entity",
            )
        )
    return found


def who_am_i(state: SandboxState, base_url: str) -> wire.Reply:
    context = f"{base_url}{API_ROOT}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
    return wire.json_reply(
        200,
        {
            "@odata.context": context,
            "BusinessUnitId": state.business_unit_id,
            "UserId": state.user_id,
            "OrganizationId": state.organization_id,
        },
        {"odata-version": "4.0"},
    )


def patch_contact(
    state: SandboxState,
    view: contacts.ContactView,
    contactid: str,
    request: WebRequest,
    entry: LogEntry,
) -> wire.Reply:
    """Update, or upsert without `If-Match` (as Dataverse does); `If-Match: *` never creates."""
    entity_set = state.entity_set
    _check_preconditions(entity_set, view.get(contactid), contactid, request.headers)
    listed, extra = _parse_changes(state, contactid, request.body)
    row = view.write(contactid, listed, extra)
    entry.listed = listed
    entity_id = f"{request.base_url}{API_ROOT}{entity_set}({contactid})"
    headers = {"odata-version": "4.0", "odata-entityid": entity_id}
    if "return=representation" in request.headers.get("prefer", ""):
        # As Dataverse: 200 with the record as written, limited to `$select`.
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        fields = reads.select_fields(state, params.get("$select"))
        record = reads.as_record(state, contactid, row, row.listed, fields)
        headers.update(
            {"content-type": wire.ODATA_JSON, "preference-applied": "return=representation"}
        )
        return wire.Reply(200, wire.dumps(record), headers)
    return wire.Reply(204, b"", headers)


def _check_preconditions(
    entity_set: str, existing: contacts.Contact | None, contactid: str, headers: Mapping[str, str]
) -> None:
    if_match = headers.get("if-match")
    if if_match is not None and existing is None:
        raise wire.Refusal(
            wire.odata_error(
                404,
                wire.DV_NOT_FOUND,
                f"{entity_set.removesuffix('s')} With Id = {contactid} Does Not Exist",
            )
        )
    if (
        if_match is not None
        and existing is not None
        and if_match.strip() not in ("*", existing.etag)
    ):
        raise wire.Refusal(
            wire.odata_error(
                412,
                wire.DV_VERSION_MISMATCH,
                "The version of the existing record doesn't match the RowVersion property "
                "provided.",
            )
        )
    if headers.get("if-none-match", "").strip() == "*" and existing is not None:
        raise wire.Refusal(
            wire.odata_error(412, "0x80040237", "A record with matching key values already exists.")
        )


def _parse_changes(
    state: SandboxState, contactid: str, body: bytes
) -> tuple[bool | None, dict[str, Any]]:
    entity_set, listing = state.entity_set, state.listing_field
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _payload_error(entity_set, f"Newtonsoft.Json.JsonReaderException: {exc}") from None
    if not isinstance(payload, dict):
        raise _payload_error(entity_set, "The payload must be a JSON object.")
    listed: bool | None = None
    extra: dict[str, Any] = {}
    for name, value in payload.items():
        if name.startswith("@") or (name == "contactid" and value == contactid):
            continue
        if name == listing:
            if not isinstance(value, bool):
                raise _payload_error(entity_set, _conversion(value, "Edm.Boolean"))
            listed = value
        elif name in contacts.KNOWN_ATTRIBUTES:
            if value is not None and not isinstance(value, str):
                raise _payload_error(entity_set, _conversion(value, "Edm.String"))
            extra[name] = value
        else:
            raise _payload_error(
                entity_set,
                f"Microsoft.OData.ODataException: The property '{name}' does not exist on type "
                "'Microsoft.Dynamics.CRM.contact'. Make sure to only use property names that "
                "are defined by the type or mark the type as open type.",
            )
    return listed, extra


def _conversion(value: object, edm_type: str) -> str:
    return f"Cannot convert the literal '{value}' to the expected type '{edm_type}'."


def _payload_error(entity_set: str, inner: str) -> wire.Refusal:
    return wire.Refusal(
        wire.odata_error(
            400,
            wire.DV_BAD_PAYLOAD,
            f"Error identified in Payload provided by the user for Entity :'{entity_set}', For "
            "more information on this error please follow this help link "
            f"https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : {inner}",
        )
    )


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise wire.Refusal(
            wire.odata_error(
                405, wire.DV_BAD_SYNTAX, f"The HTTP method '{method}' is not supported here."
            )
        )
