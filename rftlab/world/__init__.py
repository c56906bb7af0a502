"""rftlab's procedural image-caption world: factors known by construction."""
from .captions import (WORLD_CONTEXTS, WORLD_TEMPLATES, WorldTokenizer, captions, factor_phrases, factor_prompts,
                       world_concept, world_vocabulary)
from .factors import BACKGROUNDS, COLORS, FACTORS, SHAPES, SPACE, STYLES
from .render import render, to_uint8
from .sample import sample_factors, sample_world
from .tasks import SPURIOUS_ATTRIBUTES, mystery_factor, mystery_task

__all__ = [
    "BACKGROUNDS", "COLORS", "FACTORS", "SHAPES", "SPACE", "SPURIOUS_ATTRIBUTES", "STYLES", "WORLD_CONTEXTS",
    "WORLD_TEMPLATES",
    "WorldTokenizer", "captions", "factor_phrases", "factor_prompts", "world_concept", "render", "sample_factors",
    "sample_world", "to_uint8", "world_vocabulary", "mystery_task", "mystery_factor",
]
