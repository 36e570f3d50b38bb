"""Model specs, loading (hub, local, GGUF cache, PEFT, bitsandbytes), pairs and interpolation."""

from cdx.models.interpolate import interpolate
from cdx.models.loading import clear_cache, load_model
from cdx.models.pair import ModelPair, Side, check_same_vocab, load_pair
from cdx.models.spec import ModelSpec

__all__ = ["ModelPair", "ModelSpec", "Side", "check_same_vocab", "clear_cache", "interpolate", "load_model", "load_pair"]
