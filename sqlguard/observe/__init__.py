"""Adapters fed by the firewall's decision events: audit log, metrics, admin endpoint."""
