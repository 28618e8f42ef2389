"""aiohttp server for the OCI distribution API."""
