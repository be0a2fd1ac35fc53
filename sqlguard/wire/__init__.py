"""PostgreSQL protocol v3 codec: bytes in, frames and messages out. Stdlib only, no I/O."""
