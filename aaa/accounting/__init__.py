"""Accounting: Accounting-Request → session events, durable group commit with a local
journal for database outages, and the open-session index."""
