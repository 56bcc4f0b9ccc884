"""Change of Authorization and Disconnect (RFC 5176): requests per vendor, the dispatcher
that sends queued jobs to the NAS with retries, and what the NAS's Error-Cause means."""
