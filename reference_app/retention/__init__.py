"""Retention: children's records archived at 18 and purged six years later, by a command that
is safe to run repeatedly (`contactpoint retention`)."""
