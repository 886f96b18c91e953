"""Web API reads of contacts: one by id, or all of them in pages, as Dataverse serves them.

Owns `$select`, `$top`, `Prefer: odata.maxpagesize`, the paging cookie in `@odata.nextLink`, and
the read lag that makes reads see the past. Writes are in `dataverse`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from hlfsync_sandbox import contacts, wire
from hlfsync_sandbox.state import SandboxState

if TYPE_CHECKING:
    from hlfsync_sandbox.dataverse import WebRequest

API_ROOT = "/api/data/v9.2/"
MAX_PAGE_SIZE = 5000  # Dataverse's ceiling for odata.maxpagesize on standard tables
SUPPORTED_OPTIONS = frozenset({"$select", "$skiptoken", "$top"})

_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)")
_COOKIE = re.compile(r'pagenumber="(\d+)"\s+pagingcookie="([^"]*)"')
_LAST = re.compile(r'last="\{([0-9A-Fa-f-]{36})\}"')


def get_contact(
    state: SandboxState, view: contacts.ContactView, contactid: str, request: WebRequest
) -> wire.Reply:
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    fields = select_fields(state, params.get("$select"))
    row = view.get(contactid)
    listed = None if row is None else row.listed
    lagged = state.contacts.lagged(state.faults.read_lag_s)
    if contactid in lagged:
        listed = lagged[contactid]
    if row is None or listed is None:
        return wire.odata_error(
            404, wire.DV_NOT_FOUND, f"contact With Id = {contactid} Does Not Exist"
        )
    record = as_record(state, contactid, row, listed, fields)
    record["@odata.context"] = _context(state, request.base_url, fields) + "/$entity"
    return wire.Reply(200, wire.dumps(record), {"content-type": wire.ODATA_JSON})


def list_contacts(
    state: SandboxState, view: contacts.ContactView, request: WebRequest
) -> wire.Reply:
    """One page in contactid order; `@odata.nextLink` carries a Dataverse-style paging cookie."""
    pairs = parse_qsl(request.query, keep_blank_values=True)
    params = dict(pairs)
    for name in params:
        if name.startswith("$") and name not in SUPPORTED_OPTIONS:
            raise wire.Refusal(
                wire.odata_error(
                    400, wire.DV_BAD_SYNTAX, f"The query option {name} is not supported here."
                )
            )
    fields = select_fields(state, params.get("$select"))
    wanted = _PAGE_SIZE.search(request.headers.get("prefer", ""))
    size = MAX_PAGE_SIZE if wanted is None else max(1, min(int(wanted.group(1)), MAX_PAGE_SIZE))
    top = params.get("$top")
    if top is not None:
        size = min(size, _top(top))
    page_number, last = _parse_cookie(params.get("$skiptoken"))
    store = state.contacts
    ids, more = store.page_after(last, size)
    lagged = store.lagged(state.faults.read_lag_s)
    value = []
    for contactid in ids:
        row = view.get(contactid)
        listed = None if row is None else lagged.get(contactid, row.listed)
        if row is None or listed is None:  # None: created within the lag window, not yet seen
            continue
        value.append(as_record(state, contactid, row, listed, fields))
    page: dict[str, Any] = {
        "@odata.context": _context(state, request.base_url, fields),
        "value": value,
    }
    if more and top is None and ids:
        kept = "".join(
            f"{name}={quote(text, safe=',()')}&" for name, text in pairs if name != "$skiptoken"
        )
        token = quote(_make_cookie(page_number, ids[0], ids[-1]), safe="")
        page["@odata.nextLink"] = (
            f"{request.base_url}{API_ROOT}{state.entity_set}?{kept}$skiptoken={token}"
        )
    reply_headers = {"content-type": wire.ODATA_JSON, "odata-version": "4.0"}
    if wanted is not None:
        reply_headers["preference-applied"] = f"odata.maxpagesize={size}"
    return wire.Reply(200, wire.dumps(page), reply_headers)


def select_fields(state: SandboxState, select: str | None) -> list[str]:
    listing = state.listing_field
    if select is None:
        return ["contactid", listing, *sorted(contacts.KNOWN_ATTRIBUTES)]
    fields = [name.strip() for name in select.split(",") if name.strip()]
    for name in fields:
        known = name in contacts.KNOWN_ATTRIBUTES or name in state.settings.alternate_keys
        if name not in ("contactid", listing) and not known:
            raise wire.Refusal(
                wire.odata_error(
                    400,
                    wire.DV_BAD_SYNTAX,
                    f"Could not find a property named '{name}' on type "
                    "'Microsoft.Dynamics.CRM.contact'.",
                )
            )
    return fields


def _top(text: str) -> int:
    if not text.isdigit():
        raise wire.Refusal(wire.odata_error(400, wire.DV_BAD_SYNTAX, f"Invalid $top '{text}'."))
    return int(text)


def as_record(
    state: SandboxState, contactid: str, row: contacts.Contact, listed: bool, fields: list[str]
) -> dict[str, Any]:
    listing = state.listing_field
    record: dict[str, Any] = {"@odata.etag": row.etag}
    for name in fields:
        if name == "contactid":
            record[name] = contactid
        elif name == listing:
            record[name] = listed
        else:
            record[name] = row.extra.get(name)
    return record


def _context(state: SandboxState, base_url: str, fields: list[str]) -> str:
    return f"{base_url}{API_ROOT}$metadata#{state.entity_set}({','.join(fields)})"


def _make_cookie(page_number: int, first: str, last: str) -> str:
    # Dataverse's nextLink carries a paging cookie whose inner cookie is URL-encoded inside it
    # (and so doubly encoded in the link); clients must follow nextLink verbatim, and copying
    # the real shape keeps them honest about that.
    inner = (
        f'<cookie page="{page_number}"><contactid last="{{{last.upper()}}}" '
        f'first="{{{first.upper()}}}" /></cookie>'
    )
    paging = quote(inner, safe="")
    return f'<cookie pagenumber="{page_number + 1}" pagingcookie="{paging}" istracking="False" />'


def _parse_cookie(cookie: str | None) -> tuple[int, str | None]:
    """(page number, last id of the previous page) from a $skiptoken; (1, None) without one."""
    if cookie is None:
        return 1, None
    outer = _COOKIE.search(cookie)
    last = None if outer is None else _LAST.search(unquote(outer.group(2)))
    if outer is None or last is None:
        raise wire.Refusal(wire.odata_error(400, wire.DV_BAD_SYNTAX, "The $skiptoken is invalid."))
    return int(outer.group(1)), last.group(1).lower()
