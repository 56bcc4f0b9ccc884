"""Policy: pure rules over a frozen in-memory view of subscribers, plans, NAS, variables."""
