"""The logs' last line of defence: a key that names a secret is redacted, whatever its value."""

from __future__ import annotations

import io
import json

import structlog

from hlfsync import observability


def _lines(**fields: object) -> dict[str, object]:
    out = io.StringIO()
    observability.configure("info", "json", out)
    structlog.get_logger("test").info("token_refreshed", **fields)
    structlog.reset_defaults()
    line: dict[str, object] = json.loads(out.getvalue())
    return line


def test_keys_naming_a_secret_are_redacted_and_others_kept() -> None:
    line = _lines(client_secret="s3cr3t", Authorization="Bearer abc", device_token="tok",
                  db_password="pw", assertion="jwt", kind="cert_paused", attempt=2)  # fmt: skip
    assert line["event"] == "token_refreshed"  # the event's name may say "token"
    for key in ("client_secret", "Authorization", "device_token", "db_password", "assertion"):
        assert line[key] == "[redacted]", key
    assert (line["kind"], line["attempt"]) == ("cert_paused", 2)
    assert "s3cr3t" not in json.dumps(line)
    assert "abc" not in json.dumps(line)


def test_the_same_key_is_redacted_every_time() -> None:
    # The verdict per key is cached: a second line must be judged the same way.
    for _ in range(3):
        assert _lines(refresh_token="r")["refresh_token"] == "[redacted]"
        assert _lines(delivery_id=7)["delivery_id"] == 7
