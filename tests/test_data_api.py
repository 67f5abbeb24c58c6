"""The package-level names of wsolax.data resolve to the real objects."""

import wsolax.data as data
from wsolax.data import metadata, pipeline


def test_exports_resolve():
    for name in data.__all__:
        assert getattr(data, name) is not None
    assert data.load_split is metadata.load_split
    assert data.train_batches is pipeline.train_batches
    assert issubclass(data.DatasetError, ValueError)
