"""Sentinel-2 orbits: relative orbit from absolute, and when a relative orbit is flown.

Each satellite flies 143 orbits in its 10-day repeat cycle. The relative orbit is the
absolute orbit shifted by a per-satellite constant, checked on real (absolute, relative) pairs
from published products:

- S2A: A008342 → R051 (2017-01-26), A041859 → R106 (2023-06-28)
- S2B: A003080 → R051 (2017-10-08, a real MAJA product), A030802 → R031 (2023-01-29),
  A034041 → R124 (2023-09-12)
- S2C: A010031 → R051 (2026-08-07), A009674 → R123 (2026-07-13), A008614 → R064 (2026-04-30)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

ORBITS_PER_CYCLE = 143
CYCLE = timedelta(days=10)
ORBIT_PERIOD = CYCLE / ORBITS_PER_CYCLE

# relative = ((absolute + OFFSET) mod 143) + 1
RELATIVE_ORBIT_OFFSET: dict[str, int] = {"SENTINEL2A": 2, "SENTINEL2B": -27, "SENTINEL2C": 29}


def relative_orbit(platform: str, absolute: int) -> int | None:
    """Relative orbit (1–143) of an absolute orbit, or None for a platform we can't vouch for."""
    offset = RELATIVE_ORBIT_OFFSET.get(platform.upper())
    if offset is None:
        return None
    return ((absolute + offset) % ORBITS_PER_CYCLE) + 1


SECONDS_PER_DEGREE_LATITUDE = 16.8  # descending pass: ~100.7 min per 360° of orbit


@dataclass(frozen=True)
class _Anchor:
    """One real acquisition: the satellite, its absolute orbit, the sensing time of a tile and
    that tile's latitude. It fixes the phase of the satellite's orbit."""

    platform: str
    absolute: int
    when: datetime
    latitude: float
    first_day: date  # first routine acquisitions
    last_day: date | None  # end of routine acquisitions in the constellation


_ANCHORS: tuple[_Anchor, ...] = (
    # S2A_MSIL2A_20230628T070631_N0509_R106_T39QTA, granule A041859, tile sensed 07:24:41.632
    _Anchor("SENTINEL2A", 41859, datetime(2023, 6, 28, 7, 24, 41, 632000, tzinfo=timezone.utc), 18.5,
            date(2015, 7, 1), date(2025, 1, 21)),
    # SENTINEL2B_20171008-105012-463_L2A_T31TCH_C_V1-0, absolute orbit 3080
    _Anchor("SENTINEL2B", 3080, datetime(2017, 10, 8, 10, 50, 12, 463000, tzinfo=timezone.utc), 42.85,
            date(2017, 7, 1), None),
    # S2C_20260807T104621_31TCN (Terrascope), absolute orbit 10031, relative 51
    _Anchor("SENTINEL2C", 10031, datetime(2026, 8, 7, 10, 46, 21, 25000, tzinfo=timezone.utc), 47.3,
            date(2025, 1, 21), None),
)


@dataclass(frozen=True)
class Pass:
    platform: str
    absolute_orbit: int
    when: datetime  # sensing time at the requested latitude

    @property
    def day(self) -> date:
        return self.when.date()


def passes(relative: int, start: date, end: date, latitude: float = 45.0) -> list[Pass]:
    """When each active satellite flies ``relative`` over ``latitude`` in [start, end].

    Each satellite flies a relative orbit once per 10-day cycle, so two satellites give a pass
    every 5 days. Times come from the anchor acquisition and the exact repeat cycle; anchors
    mix tile sensing and datatake start times, so a time is good to about 15 minutes, a day
    and an absolute orbit exactly.
    """
    found: list[Pass] = []
    for anchor in _ANCHORS:
        rel0 = relative_orbit(anchor.platform, anchor.absolute)
        assert rel0 is not None
        first_abs = anchor.absolute + ((relative - rel0) % ORBITS_PER_CYCLE)
        first_time = (anchor.when + (first_abs - anchor.absolute) * ORBIT_PERIOD
                      + timedelta(seconds=(anchor.latitude - latitude) * SECONDS_PER_DEGREE_LATITUDE))
        k = int((datetime.combine(start, datetime.min.time(), timezone.utc) - first_time) // CYCLE)
        while True:
            when = first_time + k * CYCLE
            if when.date() > end:
                break
            day = when.date()
            active = day >= anchor.first_day and (anchor.last_day is None or day < anchor.last_day)
            if day >= start and active:
                found.append(Pass(anchor.platform, first_abs + k * ORBITS_PER_CYCLE, when))
            k += 1
    return sorted(found, key=lambda p: p.when)
