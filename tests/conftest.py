"""Shared fixtures. Tests that need the real data in ../shared/data skip cleanly when it is absent,
except where the data must be there: with ``TFP_ANOMALY_REQUIRE_DATA=1`` in the environment (CI sets
it in ``.ci/run``) a missing file *fails* the test that needs it, so a CI machine without the data can
never pass by skipping. Use :func:`_need` for every file of ../shared/data a test reads."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# event files are read through their columnar caches (tfp_anomaly.data.store): keep the test session's
# caches out of the user's ~/.cache, in a folder of their own (subprocesses inherit it)
os.environ.setdefault("TFP_ANOMALY_CACHE", tempfile.mkdtemp(prefix="tfp-anomaly-test-cache-"))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DM_FILE = SHARED / "darkmachines" / "monojet_Zp2000.0_DM_50.0_chan3.csv"
LHCO_RAW = SHARED / "lhco_raw" / "events_anomalydetection_tiny.h5"
LHCO_SCALARS = SHARED / "lhco_rnd_scalars"


#: set (to anything but "" or "0") to turn a missing ../shared/data file into a failure
REQUIRE_DATA = "TFP_ANOMALY_REQUIRE_DATA"


def _need(path: Path) -> Path:
    """``path`` when it exists; else skip the test, or fail it when ``TFP_ANOMALY_REQUIRE_DATA`` is set."""
    if not path.exists():
        if os.environ.get(REQUIRE_DATA, "") not in ("", "0"):
            pytest.fail(f"real data not available: {path} ({REQUIRE_DATA} is set: the data must be there)",
                        pytrace=False)
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture
def dm_file() -> Path:
    return _need(DM_FILE)


@pytest.fixture
def lhco_raw_file() -> Path:
    return _need(LHCO_RAW)


@pytest.fixture
def lhco_scalar_dir() -> Path:
    return _need(LHCO_SCALARS)


@pytest.fixture(scope="session")
def dm_events():
    from tfp_anomaly.data import read_darkmachines

    return read_darkmachines(_need(DM_FILE))


@pytest.fixture
def dm_lines(dm_file) -> list[str]:
    return dm_file.read_text().splitlines(keepends=True)
