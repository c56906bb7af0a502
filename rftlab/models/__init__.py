from .factory import DEFAULT_MODEL, DEFAULT_WEIGHTS, ClipModel, create_world_model, save_checkpoint
from .loading import load_model, save_local_dir

__all__ = ["DEFAULT_MODEL", "DEFAULT_WEIGHTS", "ClipModel", "create_world_model", "load_model",
           "save_checkpoint", "save_local_dir"]
