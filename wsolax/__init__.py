"""wsolax: weakly-supervised object localization in JAX/Flax."""

__version__ = "0.1.0"
