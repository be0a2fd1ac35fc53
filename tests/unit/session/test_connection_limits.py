"""Connection limits and lock-out bookkeeping (the caller supplies the clock)."""

from __future__ import annotations

from sqlguard.session.limits import ConnectionLimits, LimitSettings


def test_lockout_by_user_expires() -> None:
    limits = ConnectionLimits(LimitSettings(lockout_failures=2, lockout_seconds=10))
    assert not limits.login_failed("ann", "10.0.0.1", now=0)
    assert limits.login_failed("ann", "10.0.0.2", now=1)
    refusal = limits.admit("ann", "10.0.0.3", now=2)
    assert refusal is not None and refusal.sqlstate == "28000"
    assert limits.admit("ann", "10.0.0.3", now=12) is None


def test_remote_address_is_locked_for_everyone_but_loopback_is_not() -> None:
    limits = ConnectionLimits(LimitSettings(lockout_failures=2))
    limits.login_failed("a", "203.0.113.9", now=0)
    limits.login_failed("b", "203.0.113.9", now=0)
    assert limits.admit("c", "203.0.113.9", now=1) is not None
    limits.login_failed("a", "127.0.0.1", now=0)
    limits.login_failed("b", "127.0.0.1", now=0)
    assert limits.admit("c", "127.0.0.1", now=1) is None


def test_failures_outside_the_window_do_not_count() -> None:
    limits = ConnectionLimits(LimitSettings(lockout_failures=2, lockout_window=5))
    limits.login_failed("ann", "local", now=0)
    assert not limits.login_failed("ann", "local", now=10)


def test_release_frees_a_slot() -> None:
    limits = ConnectionLimits(LimitSettings(max_connections_per_user=1))
    assert limits.admit("ann", "local", now=0) is None
    assert limits.admit("ann", "local", now=0) is not None
    limits.release("ann")
    assert limits.admit("ann", "local", now=0) is None
