"""The registry of methods: one line per method."""
from .base import HParam, Method
from .ft import FT
from .wiseft import WiSEFT, wise_ft
from .zeroshot import ZeroShot

METHODS: dict[str, type[Method]] = {
    "zeroshot": ZeroShot,
    "ft": FT,
    "wise-ft": WiSEFT,
}


def get_method(name: str, **hparams) -> Method:
    """An instance of a registered method; the error lists the registered names."""
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(METHODS)}")
    return METHODS[name](**hparams)


__all__ = ["FT", "HParam", "METHODS", "Method", "WiSEFT", "ZeroShot", "get_method", "wise_ft"]
