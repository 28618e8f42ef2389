"""strata's image builder: Dockerfile + context -> OCI image, and the docker-like client CLI."""
