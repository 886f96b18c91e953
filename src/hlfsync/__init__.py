"""hlfsync: keeps HLF's public peer-mentor listing in Dynamics in step with PostgreSQL."""

__version__ = "0.1.0"
