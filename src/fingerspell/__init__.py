"""fingerspell: real-time American Sign Language fingerspelling recognition."""

__version__ = "0.1.0"
