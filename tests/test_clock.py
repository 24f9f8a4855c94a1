"""Clocks (jobmock.clock): the engine's only source of time."""

from __future__ import annotations

import time

import pytest

from jobmock.clock import DEFAULT_EPOCH, RealClock, ScaledClock, VirtualClock, make_clock


def test_virtual_clock_starts_at_the_default_epoch_and_stands_still() -> None:
    clock = VirtualClock()
    assert clock.now() == DEFAULT_EPOCH
    assert clock.now() == clock.now()
    assert clock.speed == 0.0


def test_virtual_clock_starts_where_told() -> None:
    assert VirtualClock(start=1000).now() == 1000.0
    assert isinstance(VirtualClock(start=1000).now(), float)


def test_virtual_clock_advance_moves_forward_and_returns_the_new_time() -> None:
    clock = VirtualClock(start=100.0)
    assert clock.advance(2.5) == 102.5
    assert clock.now() == 102.5
    assert clock.advance(0) == 102.5
    clock.advance(0.25)
    assert clock.now() == 102.75


def test_virtual_clock_never_goes_back() -> None:
    clock = VirtualClock(start=100.0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(99.999)
    assert clock.now() == 100.0


def test_virtual_clock_set_moves_to_a_later_or_equal_time() -> None:
    clock = VirtualClock(start=100.0)
    clock.set(100.0)
    assert clock.now() == 100.0
    clock.set(250.5)
    assert clock.now() == 250.5


def test_real_clock_follows_the_wall_clock() -> None:
    before = time.time()
    now = RealClock().now()
    after = time.time()
    assert before <= now <= after
    assert RealClock().speed == 1.0


def test_scaled_clock_rejects_a_non_positive_speed() -> None:
    for speed in (0, -1.0):
        with pytest.raises(ValueError, match="positive"):
            ScaledClock(speed)


def test_scaled_clock_starts_at_the_wall_clock_and_never_goes_back() -> None:
    before = time.time()
    clock = ScaledClock(60.0)
    first = clock.now()
    assert clock.speed == 60.0
    assert first >= before
    readings = [clock.now() for _ in range(50)]
    assert readings == sorted(readings)
    assert readings[0] >= first


def test_scaled_clock_runs_faster_than_the_wall_clock() -> None:
    # Bracket the clock's own monotonic reads: at least (m_b - m_a) wall seconds pass
    # between the two readings, so at least speed times that passes on the clock.
    clock = ScaledClock(1000.0)
    c0 = clock.now()
    m_a = time.monotonic()
    while time.monotonic() - m_a < 0.001:
        pass
    m_b = time.monotonic()
    c1 = clock.now()
    assert c1 - c0 >= (m_b - m_a) * 1000.0 - 1e-6


def test_make_clock_builds_each_kind() -> None:
    assert isinstance(make_clock("virtual"), VirtualClock)
    assert isinstance(make_clock("real"), RealClock)
    assert isinstance(make_clock(), RealClock)
    scaled = make_clock("real", speed=10.0)
    assert isinstance(scaled, ScaledClock)
    assert scaled.speed == 10.0
    with pytest.raises(ValueError, match="unknown clock"):
        make_clock("sundial")
