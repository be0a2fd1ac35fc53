"""Managed identities: sqlguard authenticates each person itself (SCRAM-SHA-256 against stored
verifiers, never passwords) and connects upstream as a mapped role only the sidecar can use."""
