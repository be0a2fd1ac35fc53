"""TLS for both sides of the sidecar: a sans-IO channel and the contexts it runs on."""
