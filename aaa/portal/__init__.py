"""The subscriber-portal JSON API (twisted.web): log in with CPF/CNPJ and a service's
password, see the services, open and follow tickets, ask for a trust unlock.

No business rules live here: every decision is a management (or billing bridge)
function. This package owns HTTP, the login rate limits and the in-memory sessions.
The API is described by `openapi.json` (served at /api/openapi.json).
"""
