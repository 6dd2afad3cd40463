"""Synthetic Coral Edge TPU sessions: usbmon pcapng files the project makes itself, with their
exact ground truth (for tests, the README sample, benchmarks and fuzzing)."""

from usbtrace.synthetic.profile import DeviceProfile, SessionProfile, Timing
from usbtrace.synthetic.session import Session, generate, write_session

__all__ = ["DeviceProfile", "Session", "SessionProfile", "Timing", "generate", "write_session"]
