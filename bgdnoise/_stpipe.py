"""stpipe entry point: lists the step without importing jwst."""


def get_steps() -> list[tuple[str, str, bool]]:
    """Return (class name, alias, is pipeline) for each step bgdnoise provides."""
    return [("bgdnoise.step.BgdNoiseStep", "bgdnoise", False)]
