"""The shell: loops that call the pure core and the adapters (sync jobs, alerts, schedules)."""
