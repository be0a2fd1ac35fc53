"""PostgreSQL protocol v3 codec: bytes in, frames and encoded messages out. Standard library only, no I/O."""
