"""Bad API requests: a 4xx problem+json, the data unchanged, the app still serving."""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from hlfsync.api import mint_token
from tests.integration.api import world as world_mod
from tests.integration.bad_input import sweep

J = {"content-type": "application/json"}

NOT_UTF8 = sweep.cursor(b'{"v": 1, "k": "\xff"}')

REQUESTS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "mentor id not a UUID": ("GET", "/api/v1/mentors/not-a-uuid/sync", {}, 422),
    "mentor id a UUID with a tail": ("GET", "/api/v1/mentors/{mentor}x/sync", {}, 422),
    "mentor id a NUL": ("GET", "/api/v1/mentors/%00/sync", {}, 422),
    "mentor id 10 kB long": ("GET", "/api/v1/mentors/" + "9" * 10_000 + "/sync", {}, 422),
    "mentor id unknown": ("GET", "/api/v1/mentors/{unknown}/sync", {}, 404),
    "force-sync of a number": ("POST", "/api/v1/mentors/123/force-sync", {}, 422),
    "force-sync of an unknown mentor": ("POST", "/api/v1/mentors/{unknown}/force-sync", {}, 404),
    "audit of an unknown mentor": ("GET", "/api/v1/mentors/{unknown}/audit", {}, 404),
    "audit cursor garbage": ("GET", "/api/v1/mentors/{mentor}/audit?cursor=garbage", {}, 400),
    "mentors cursor garbage": ("GET", "/api/v1/mentors?cursor=%25%25%25", {}, 400),
    "mentors cursor of another version": (
        "GET", f"/api/v1/mentors?cursor={sweep.cursor({'v': 2, 'k': 'x'})}", {}, 400),
    "mentors cursor with a number key": (
        "GET", f"/api/v1/mentors?cursor={sweep.cursor({'v': 1, 'k': 5})}", {}, 400),
    "mentors cursor with an object key": (
        "GET", f"/api/v1/mentors?cursor={sweep.cursor({'v': 1, 'k': {'id': 1}})}", {}, 400),
    "mentors cursor a JSON list": ("GET", f"/api/v1/mentors?cursor={sweep.cursor([1])}", {}, 400),
    "mentors cursor not UTF-8": ("GET", f"/api/v1/mentors?cursor={NOT_UTF8}", {}, 400),
    "mentors cursor too long": ("GET", "/api/v1/mentors?cursor=" + "a" * 201, {}, 422),
    "dead-letters cursor beyond bigint": (
        "GET", f"/api/v1/dead-letters?cursor={sweep.cursor({'v': 1, 'k': 2**63})}", {}, 400),
    "dead-letters cursor a fraction": (
        "GET", f"/api/v1/dead-letters?cursor={sweep.cursor({'v': 1, 'k': 1.5})}", {}, 400),
    "dead-letters cursor a boolean": (
        "GET", f"/api/v1/dead-letters?cursor={sweep.cursor({'v': 1, 'k': True})}", {}, 400),
    "dead-letters cursor a numeric string": (
        "GET", f"/api/v1/dead-letters?cursor={sweep.cursor({'v': 1, 'k': '5'})}", {}, 400),
    "dead-letters cursor negative": (
        "GET", f"/api/v1/dead-letters?cursor={sweep.cursor({'v': 1, 'k': -1})}", {}, 400),
    "alerts cursor garbage": ("GET", "/api/v1/alerts?cursor=!!", {}, 400),
    "limit zero": ("GET", "/api/v1/mentors?limit=0", {}, 422),
    "limit above the maximum": ("GET", "/api/v1/mentors?limit=201", {}, 422),
    "limit negative": ("GET", "/api/v1/dead-letters?limit=-1", {}, 422),
    "limit a word": ("GET", "/api/v1/alerts?limit=all", {}, 422),
    "limit in exponent form": ("GET", "/api/v1/mentors?limit=1e3", {}, 422),
    "limit beyond any integer": ("GET", "/api/v1/mentors?limit=" + "9" * 40, {}, 422),
    "dead-letters status unknown": ("GET", "/api/v1/dead-letters?status=bogus", {}, 422),
    "letter id a word": ("POST", "/api/v1/dead-letters/abc/requeue", {}, 422),
    "letter id zero": ("POST", "/api/v1/dead-letters/0/requeue", {}, 422),
    "letter id negative": ("POST", "/api/v1/dead-letters/-5/requeue", {}, 422),
    "letter id beyond bigint": ("POST", f"/api/v1/dead-letters/{2**63}/requeue", {}, 422),
    "letter id unknown": ("POST", "/api/v1/dead-letters/999999999/requeue", {}, 404),
    "resolve: invalid JSON": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                              {"content": b"{", "headers": J}, 422),
    "resolve: a JSON list": ("POST", "/api/v1/dead-letters/{letter}/resolve", {"json": []}, 422),
    "resolve: a JSON string": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": "done"}, 422),
    "resolve: note a number": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": {"note": 5}}, 422),
    "resolve: note empty": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                            {"json": {"note": ""}}, 422),
    "resolve: note blank": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                            {"json": {"note": " \t\n "}}, 422),
    "resolve: note too long": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": {"note": "x" * 2001}}, 422),
    "resolve: note with a NUL": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                                 {"json": {"note": "fixed\u0000by hand"}}, 422),
    "resolve: body not UTF-8": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                                {"content": b'{"note": "\xff\xfe"}', "headers": J}, 400),
    "resolve: JSON nested 100,000 deep": (
        "POST", "/api/v1/dead-letters/{letter}/resolve",
        {"content": b"[" * 100_000 + b"]" * 100_000, "headers": J}, 400),
    "resolve: no body": ("POST", "/api/v1/dead-letters/{letter}/resolve", {}, 422),
    "resolve: a form instead of JSON": (
        "POST", "/api/v1/dead-letters/{letter}/resolve",
        {"content": b"note=done", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        422),
    "dashboard: mentor id not a UUID": ("GET", "/dashboard/mentors/not-a-uuid", {}, 422),
    "dashboard: cursor garbage": ("GET", "/dashboard/mentors?cursor=garbage", {}, 400),
    "dashboard: letter id zero": ("POST", "/dashboard/dead-letters/0/requeue", {}, 422),
    "an unknown route": ("GET", "/api/v1/nothing-here", {}, 404),
    "a method the route lacks": ("DELETE", "/api/v1/mentors", {}, 405),
}  # fmt: skip


@pytest.mark.parametrize("case", REQUESTS)
async def test_a_malformed_api_request_is_a_4xx_problem_and_changes_nothing(
    api: httpx.AsyncClient, world: world_mod.World, conn: sweep.Conn, watch: sweep.Watch, case: str
) -> None:
    """Bad ids, cursors, limits and bodies: a 4xx application/problem+json with a one-line
    detail, never a 5xx; nothing in the queue or the dead letters moves; the API goes on."""
    method, path, options, status = REQUESTS[case]
    places = {"mentor": world.mentors["m_a1"], "unknown": uuid.uuid4(),
              "letter": world.dead_letters["m_a1"]}  # fmt: skip
    token = mint_token(sweep.JWT_SECRET, world.users["admin_a"], ttl_s=60)
    options = {**options, "headers": {**options.get("headers", {}), **sweep.bearer(token)}}
    was = sweep.snapshot(conn)
    response = await api.request(method, path.format(**places), **options)
    assert (response.status_code, response.headers["content-type"]) == (
        status, "application/problem+json"
    ), response.text  # fmt: skip
    problem = response.json()
    assert (problem["status"], problem["title"]) == (status, HTTPStatus(status).phrase)
    assert sweep.one_line(problem.get("detail") or problem["title"])
    assert sweep.snapshot(conn) == was
    assert watch.named("api_unhandled") == []
    await sweep.api_still_works(api, world)
    assert watch.leaks(conn, response.text) == set()
