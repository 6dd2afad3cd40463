"""Synthetic Coral Edge TPU sessions: usbmon pcapng files the project makes itself, with their
exact ground truth (for tests, the README sample, benchmarks and fuzzing)."""

from lab.synthetic.presets import PRESETS, preset
from lab.synthetic.profile import DeviceProfile, SessionProfile, Timing
from lab.synthetic.session import Session, generate, session_bytes, write_session

__all__ = [
    "PRESETS",
    "DeviceProfile",
    "Session",
    "SessionProfile",
    "Timing",
    "generate",
    "preset",
    "session_bytes",
    "write_session",
]
