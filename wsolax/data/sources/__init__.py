"""Converters from the datasets' original folder layouts to the wsolevaluation metadata layout.

Each `convert_<name>(root, ...)` reads the user's folder without copying or changing any image and
returns a `Prepared` dataset; `write_prepared` writes its metadata. `python -m wsolax.prepare` is
the command line. Nothing is ever downloaded.
"""

from wsolax.data.sources.cars import convert_cars
from wsolax.data.sources.common import Prepared, Split, write_prepared
from wsolax.data.sources.cub import convert_cub
from wsolax.data.sources.ilsvrc import convert_ilsvrc
from wsolax.data.sources.openimages import convert_openimages

CONVERTERS = {
    "cub": convert_cub,
    "ilsvrc": convert_ilsvrc,
    "openimages": convert_openimages,
    "cars": convert_cars,
}

__all__ = ["CONVERTERS", "Prepared", "Split", "convert_cars", "convert_cub", "convert_ilsvrc",
           "convert_openimages", "write_prepared"]
