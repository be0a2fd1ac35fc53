"""The asyncio/uvloop edge: sockets, time, signals. Everything it decides, the session decides."""
