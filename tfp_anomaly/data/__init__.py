"""Data layer: event containers, readers for the formats physicists have, the object-grid
representation, scalers, splits and ``tf.data`` pipelines.

Everything here except :func:`make_dataset` and :func:`stream_dataset` works without importing TensorFlow.
"""
from . import objects
from .adc2021 import iter_adc2021, read_adc2021
from .cache import CacheReader, iter_cache, read_cache, write_cache
from .darkmachines import DarkMachinesReader, iter_darkmachines, read_darkmachines, write_darkmachines
from .errors import DataFormatError, SkipLog
from .events import Events, concatenate
from .formats import available as available_formats
from .formats import open_events, read_events
from .lhco import FeatureTable, iter_lhco_raw, read_lhco_raw, read_lhco_scalars
from .preprocessing import SCALERS, Scaler, get_scaler
from .representation import FEATURES, PRESETS, EventObservables, ObjectGrid, grid_chunks
from .root import iter_delphes, iter_root_ntuple, read_delphes, read_root_ntuple
from .sample import load_sample
from .store import ensure_cache
from .splits import Split, split_background, split_indices


def make_dataset(*args, **kwargs):
    """See :func:`tfp_anomaly.data.pipeline.make_dataset` (imports TensorFlow on first use)."""
    from .pipeline import make_dataset as _make_dataset

    return _make_dataset(*args, **kwargs)


def stream_dataset(*args, **kwargs):
    """See :func:`tfp_anomaly.data.pipeline.stream_dataset` (imports TensorFlow on first use)."""
    from .pipeline import stream_dataset as _stream_dataset

    return _stream_dataset(*args, **kwargs)


__all__ = [
    "objects", "Events", "concatenate", "DataFormatError", "SkipLog",
    "DarkMachinesReader", "iter_darkmachines", "read_darkmachines", "write_darkmachines",
    "iter_adc2021", "read_adc2021", "iter_delphes", "read_delphes", "iter_root_ntuple", "read_root_ntuple",
    "FeatureTable", "read_lhco_scalars", "iter_lhco_raw", "read_lhco_raw",
    "iter_cache", "read_cache", "write_cache", "CacheReader", "ensure_cache", "open_events", "read_events", "available_formats",
    "ObjectGrid", "EventObservables", "FEATURES", "PRESETS", "Scaler", "SCALERS", "get_scaler",
    "Split", "split_indices", "split_background", "make_dataset", "stream_dataset", "grid_chunks", "load_sample",
]
