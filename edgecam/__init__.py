"""edgecam: a real-time camera image classifier for the Raspberry Pi."""

__version__ = "0.1.0"
