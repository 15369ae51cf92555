"""FreezeDesk: restrict accounts for the right reason, tell customers honestly, restore them fast."""

__version__ = "0.1.0"
