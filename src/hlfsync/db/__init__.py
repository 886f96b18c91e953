"""PostgreSQL: the embedded server, connections, migrations and the stores on named queries."""
