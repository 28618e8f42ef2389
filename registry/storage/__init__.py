"""Registry storage: a path-based driver and the blob, upload and manifest stores over it."""
