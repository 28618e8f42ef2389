"""The shared OCI model: digests, descriptors, media types, manifests. Stdlib only, no I/O."""
