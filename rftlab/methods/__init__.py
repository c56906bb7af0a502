"""The registry of methods: one line per method."""
from .base import HParam, Method, Probe, Recipe, TrainResult, lr_grid
from .carft import CARFT
from .carot import CaRot
from .flyp import FLYP
from .ft import FT
from .l2sp import L2SP
from .lines import LiNeS
from .lipsum import LipsumFT
from .lp import LP
from .lpft import LPFT
from .model_stock import ModelStock
from .soup import GreedySoup, Soup, average_state_dicts
from .spd import SPD
from .starft import StarFT
from .wiseft import WiSEFT, wise_ft
from .zeroshot import ZeroShot

METHODS: dict[str, type[Method | Recipe]] = {
    "zeroshot": ZeroShot,
    "lp": LP,
    "ft": FT,
    "lp-ft": LPFT,
    "l2-sp": L2SP,
    "wise-ft": WiSEFT,
    "flyp": FLYP,
    "soup-uniform": Soup,
    "soup-greedy": GreedySoup,
    "lipsum-ft": LipsumFT,
    "car-ft": CARFT,
    "carot": CaRot,
    "starft": StarFT,
    "model-stock": ModelStock,
    "lines": LiNeS,
    "spd": SPD,
}


def get_method(name, **hparams) -> Method | Recipe:
    """An instance of a registered method (a Method the Trainer runs, or a Recipe of several
    runs); the error lists the registered names."""
    if isinstance(name, (Method, Recipe)):
        return name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(METHODS)}")
    return METHODS[name](**hparams)


__all__ = ["CARFT", "CaRot", "FLYP", "FT", "GreedySoup", "HParam", "L2SP", "LP", "LPFT", "LiNeS", "LipsumFT", "ModelStock", "SPD",
           "METHODS", "Method", "Probe", "Recipe", "Soup", "StarFT", "TrainResult", "WiSEFT", "ZeroShot", "average_state_dicts",
           "get_method", "lr_grid", "wise_ft"]
