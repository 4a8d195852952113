"""The local PEPS FULL_MAJA + GEODES server: the same protocols, synthetic products, faults."""

from fullmaja_stac.emulator.server import DEMO_USER, FAULTS, GEODES_KEY, PepsEmulator

__all__ = ["DEMO_USER", "FAULTS", "GEODES_KEY", "PepsEmulator"]
