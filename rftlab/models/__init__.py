from .factory import (DEFAULT_MODEL, DEFAULT_WEIGHTS, ClipModel, create_world_model, load_model,
                      save_checkpoint)

__all__ = ["DEFAULT_MODEL", "DEFAULT_WEIGHTS", "ClipModel", "create_world_model", "load_model",
           "save_checkpoint"]
