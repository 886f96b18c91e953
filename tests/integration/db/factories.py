"""The row factories moved to `hlfsync.testing`; this re-export keeps branches written before
the move importing. Import from `hlfsync.testing`; delete this file once nothing uses it."""

from hlfsync.testing import Conn, make_chapter, make_mentor, make_org, make_user, one

__all__ = ["Conn", "make_chapter", "make_mentor", "make_org", "make_user", "one"]
