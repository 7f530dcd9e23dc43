"""The platform layer: the status note, gate reviews, compute budget and automation over every domain."""
