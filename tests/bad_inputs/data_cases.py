"""Bad-input cases: data (see tests/bad_inputs/__init__.py).

Every case goes through ``tfp-anomaly data inspect`` or ``data convert``. The CSV cases start from the
first lines of the embedded sample (``tfp_anomaly/data/embedded/qstar.csv.gz``) and damage one field of
line 2; the HDF5 cases write small files with h5py (or pandas, for the LHCO raw frames).
"""
from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from . import Case

SAMPLE = Path(__file__).resolve().parents[2] / "tfp_anomaly" / "data" / "embedded" / "qstar.csv.gz"


@functools.lru_cache(maxsize=1)
def _sample_lines() -> tuple[str, ...]:
    with gzip.open(SAMPLE, "rt") as handle:
        return tuple(next(handle) for _ in range(6))


def _line(k: int = 0) -> str:
    return _sample_lines()[k]


def _fields(k: int = 0) -> list[str]:
    """The ';'-separated fields of sample line ``k`` (its trailing ';' dropped)."""
    return _line(k).rstrip("\n").rstrip(";").split(";")


def _join(fields: list[str]) -> str:
    return ";".join(fields) + ";\n"


def _with(field: int, value: str, part: int | None = None) -> str:
    """Sample line 1 with field ``field`` (0-based; within an object field, value ``part``) replaced."""
    fields = _fields(1)
    if part is None:
        fields[field] = value
    else:
        parts = fields[field].split(",")
        parts[part] = value
        fields[field] = ",".join(parts)
    return _join(fields)


def _csv(tmp_path: Path, second: str, name: str = "events.csv") -> Path:
    """A three-line Dark Machines file whose line 2 is ``second``."""
    path = tmp_path / name
    path.write_bytes((_line(0) + second + _line(2)).encode("utf-8") if isinstance(second, str)
                     else _line(0).encode() + second + _line(2).encode())
    return path


def _good(tmp_path: Path, name: str = "good.csv") -> Path:
    path = tmp_path / name
    path.write_text("".join(_sample_lines()))
    return path


def _cache(tmp_path: Path, name: str = "events.h5") -> Path:
    from tfp_anomaly.data import read_darkmachines, write_cache

    path = tmp_path / name
    write_cache([read_darkmachines(_good(tmp_path, "source.csv"))], path)
    return path


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _convert(path, out="out.h5", *options):
    return ["data", "convert", str(path), str(out), "--no-progress", *options]


def _inspect(path, *options):
    return ["data", "inspect", str(path), *options]


# --------------------------------------------------------------------------- malformed CSV lines
def line_case(id: str, second, expect, command=_convert, options=()) -> Case:
    def setup(tmp_path):
        path = _csv(tmp_path, second() if callable(second) else second)
        return command(path, *([tmp_path / "out.h5"] if command is _convert else []), *options)

    return Case(id, setup, ["events.csv", *expect])


LINE_CASES = [
    line_case("csv-event-id-1e30", lambda: _with(0, "1e30"), ["line 2", "field 1 (event_id)", "'1e30'", "2^53"]),
    line_case("csv-event-id-below-int64", lambda: _with(0, "-1e19"), ["line 2", "field 1 (event_id)", "'-1e19'"]),
    line_case("csv-event-id-not-integer", lambda: _with(0, "7.5"), ["line 2", "field 1 (event_id)", "not an integer"]),
    line_case("csv-line-ends-in-two-semicolons", lambda: _line(1).rstrip("\n") + ";\n",
              ["line 2", "field", "found 1"]),
    line_case("csv-line-ends-in-two-semicolons-inspect",
              lambda: _line(1).rstrip("\n") + ";\n" + "garbage;\n", ["line 2"], _inspect, ()),
    line_case("csv-underscore-digit-separator", lambda: _with(5, "947_383", part=2),
              ["line 2", "field 6 (object 1", "pt)", "'947_383'"]),
    line_case("csv-arabic-indic-digits", lambda: _with(3, "١٢٣"), ["line 2", "field 4 (MET)", "'١٢٣'"]),
    line_case("csv-fullwidth-digits", lambda: _with(0, "１２３"), ["line 2", "field 1 (event_id)", "'１２３'"]),
    line_case("csv-space-inside-a-number", lambda: _with(5, " 5", part=1),
              ["line 2", "field 6 (object 1", "E)", "' 5'"]),
    line_case("csv-nan-met", lambda: _with(3, "nan"), ["line 2", "field 4 (MET)", "non-finite"]),
    line_case("csv-inf-eta", lambda: _with(5, "-inf", part=3), ["line 2", "eta)", "non-finite"]),
    line_case("csv-float32-overflow", lambda: _with(5, "5e60", part=1), ["line 2", "E)", "overflows float32"]),
    line_case("csv-beyond-float64", lambda: _with(4, "1e400"), ["line 2", "field 5 (METphi)", "non-finite"]),
    line_case("csv-unknown-object-code", lambda: _with(5, "tau", part=0), ["line 2", "field 6 (object 1)", "'tau'"]),
    line_case("csv-object-with-four-values", lambda: _with(5, ",".join(_fields(1)[5].split(",")[:4])),
              ["line 2", "field 6 (object 1)", "found 4"]),
    line_case("csv-short-header", "7;qstar;1\n", ["line 2", "at least 5"]),
    line_case("csv-empty-process", lambda: _with(1, ""), ["line 2", "field 2 (process_id)", "empty"]),
    line_case("csv-comma-in-weight", lambda: _with(2, "0,5"), ["line 2", "field 3 (weight)", "'0,5'"]),
    line_case("csv-non-utf8-byte-in-a-number", lambda: _with(3, "12\udcff3").encode("utf-8", "surrogateescape"),
              ["line 2", "field 4 (MET)"]),
    line_case("csv-inspect-names-the-line-too", lambda: _with(5, "4x000", part=2),
              ["line 2", "pt)", "'4x000'"], _inspect),
]


# --------------------------------------------------------------------------- whole files
def _setup_same_file(tmp_path):
    cache = _cache(tmp_path)
    return _convert(cache, cache)


def _setup_output_links_to_input(tmp_path):
    cache = _cache(tmp_path)
    link = tmp_path / "link.h5"
    link.symlink_to(cache)
    return _convert(cache, link)


def _setup_output_hard_link(tmp_path):
    cache = _cache(tmp_path)
    other = tmp_path / "other.h5"
    os.link(cache, other)
    return _convert(cache, other)


def _setup_csv_onto_itself(tmp_path):
    path = _good(tmp_path, "x.csv")
    return _convert(path, path, "--on-error", "skip")


def _setup_truncated_gzip(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("".join(_sample_lines()).encode()))
    _truncated(path)
    return _convert(path)


def _setup_plain_text_gz(tmp_path):
    path = tmp_path / "p.csv.gz"
    path.write_text("".join(_sample_lines()))
    return _inspect(path)


def _setup_corrupt_gzip(tmp_path):
    path = tmp_path / "c.csv.gz"
    data = bytearray(gzip.compress("".join(_sample_lines()).encode()))
    data[20:60] = bytes(40)  # the deflate stream damaged, the header intact
    path.write_bytes(bytes(data))
    return _inspect(path)


def _setup_directory_input(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    return _inspect(tmp_path / "dir.csv")


def _setup_directory_input_convert(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    return _convert(tmp_path / "dir.csv")


def _setup_directory_output(tmp_path):
    (tmp_path / "outdir").mkdir()
    return _convert(_good(tmp_path), tmp_path / "outdir")


def _setup_output_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("not a directory\n")
    return _convert(_good(tmp_path), tmp_path / "afile" / "out.h5")


def _setup_output_not_h5(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("precious\n")
    return _convert(_good(tmp_path), other)


def _setup_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    return _convert(path)


def _setup_blank_csv(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n  \n\n")
    return _convert(path)


def _setup_all_bad(tmp_path, *options):
    path = tmp_path / "allbad.csv"
    path.write_text("garbage\n" * 3)
    return _convert(path, tmp_path / "out.h5", "--on-error", "skip", *options)


def _setup_binary_csv(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes().replace(b"\n", b"x") + b"\n")
    return _convert(path)


def _setup_missing(tmp_path):
    return _convert(tmp_path / "nowhere.csv")


def _setup_zero_chunk_size(tmp_path):
    return _inspect(_good(tmp_path), "--chunk-size", "0")


def _setup_truncated_cache(tmp_path, command, *options):
    path = _truncated(_cache(tmp_path))
    (tmp_path / "source.csv").unlink()
    return command(path, *options)


def _setup_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("".join(_sample_lines()))
    return _inspect(path)


def _h5(tmp_path, name, build):
    import h5py

    path = tmp_path / name
    with h5py.File(path, "w") as handle:
        build(handle)
    return path


def _setup_unknown_layout(tmp_path):
    return _inspect(_h5(tmp_path, "odd.h5", lambda h: h.create_dataset("foo", data=np.zeros(3))))


def _cache_with(tmp_path, change):
    import h5py

    path = _cache(tmp_path, "damaged.h5")
    (tmp_path / "source.csv").unlink()
    with h5py.File(path, "a") as handle:
        change(handle["events"])
    return _convert(path, tmp_path / "out.h5")


def _shorter_obj_pt(group):
    values = group["obj_pt"][:-1]
    del group["obj_pt"]
    group.create_dataset("obj_pt", data=values)


def _lhco_scalars(tmp_path, values, items=(b"mjj", b"mj1", b"tau21_1"), index=np.arange(4), name="sig.h5"):
    def build(handle):
        group = handle.create_group("sig")
        group.attrs["nblocks"] = 1
        group.create_dataset("axis0", data=np.array(items))
        group.create_dataset("axis1", data=index)
        group.create_dataset("block0_items", data=np.array(items))
        group.create_dataset("block0_values", data=values)

    return _inspect(_h5(tmp_path, name, build))


def _adc(tmp_path, build):
    return _convert(_h5(tmp_path, "adc.h5", build), tmp_path / "out.h5", "--format", "adc2021")


def _lhco_raw(tmp_path, obj):
    path = tmp_path / "raw.h5"
    obj.to_hdf(path, key="df", format="fixed")
    return _convert(path, tmp_path / "out.h5")


def _frame(columns):
    import pandas as pd

    return pd.DataFrame(np.ones((3, columns)))


def _series():
    import pandas as pd

    return pd.Series(np.ones(5))


FILE_CASES = [
    Case("convert-output-is-the-input", _setup_same_file, ["events.h5", "is the input file", "overwrite"]),
    Case("convert-output-is-a-symlink-to-the-input", _setup_output_links_to_input, ["link.h5", "is the input file"]),
    Case("convert-output-is-a-hard-link-to-the-input", _setup_output_hard_link, ["other.h5", "is the input file"]),
    Case("convert-csv-onto-itself-skip-mode", _setup_csv_onto_itself, ["x.csv", "must end in .h5"]),
    Case("convert-output-not-an-hdf5-name", _setup_output_not_h5, ["other.csv", "must end in .h5"]),
    Case("convert-output-is-a-directory", _setup_directory_output, ["outdir", "is a directory"]),
    Case("convert-output-under-a-file", _setup_output_under_a_file, ["afile", "is a file, not a directory"]),
    Case("convert-input-is-a-directory", _setup_directory_input_convert, ["dir.csv", "is a directory"]),
    Case("inspect-input-is-a-directory", _setup_directory_input, ["dir.csv", "is a directory"]),
    Case("convert-missing-input", _setup_missing, ["nowhere.csv", "not found"]),
    Case("gzip-truncated", _setup_truncated_gzip, ["t.csv.gz", "truncated or corrupt", "line 3", "2 complete line(s)"]),
    Case("gzip-plain-text-named-gz", _setup_plain_text_gz, ["p.csv.gz", "not gzip-compressed"]),
    Case("gzip-damaged-stream", _setup_corrupt_gzip, ["c.csv.gz", "truncated or corrupt"]),
    Case("convert-empty-csv", _setup_empty_csv, ["empty.csv", "no events", "empty"]),
    Case("convert-blank-lines-only", _setup_blank_csv, ["blank.csv", "no events", "blank"]),
    Case("convert-all-lines-bad-skip-mode", _setup_all_bad, ["allbad.csv", "no events", "all 3", "line 1"]),
    Case("convert-all-lines-bad-skip-mode-chunk-size-1", lambda t: _setup_all_bad(t, "--chunk-size", "1"),
         ["allbad.csv", "all 3", "malformed"]),
    Case("csv-binary-garbage", _setup_binary_csv, ["binary.csv", "line 1"]),
    Case("inspect-chunk-size-zero", _setup_zero_chunk_size, ["chunk_size", ">= 1"]),
    Case("hdf5-truncated-format-cache", lambda t: _setup_truncated_cache(t, _inspect, "--format", "cache"),
         ["events.h5", "truncated or corrupt"]),
    Case("hdf5-truncated-format-adc2021", lambda t: _setup_truncated_cache(t, _convert, t / "out.h5", "--format", "adc2021"),
         ["events.h5", "truncated or corrupt"]),
    Case("hdf5-truncated-detected", lambda t: _setup_truncated_cache(t, _inspect), ["events.h5", "truncated or corrupt"]),
    Case("hdf5-not-hdf5-named-h5", _setup_not_hdf5, ["text.h5", "not an HDF5 file"]),
    Case("hdf5-unknown-layout", _setup_unknown_layout, ["odd.h5", "'foo'", "no registered layout"]),
    Case("cache-dataset-shorter-than-its-peers", lambda t: _cache_with(t, _shorter_obj_pt),
         ["damaged.h5", "events/obj_pt", "entries"]),
    Case("cache-dataset-missing", lambda t: _cache_with(t, lambda g: g.__delitem__("met")),
         ["damaged.h5", "events/met", "missing"]),
    Case("lhco-scalars-block-with-too-few-columns", lambda t: _lhco_scalars(t, np.ones((4, 2))),
         ["sig.h5", "sig/block0_values", "(4, 2)", "expected (4, 3)"]),
    Case("lhco-scalars-block-is-1d", lambda t: _lhco_scalars(t, np.ones(4)),
         ["sig.h5", "sig/block0_values", "(4,)"]),
    Case("lhco-scalars-block-of-strings", lambda t: _lhco_scalars(t, np.full((4, 3), b"x")),
         ["sig.h5", "sig/block0_values", "not numbers"]),
    Case("lhco-scalars-rows-differ-from-index", lambda t: _lhco_scalars(t, np.ones((3, 3))),
         ["sig.h5", "sig/block0_values", "expected (4, 3)"]),
    Case("lhco-raw-too-few-columns", lambda t: _lhco_raw(t, _frame(5)), ["raw.h5", "5 columns", "expected 2100"]),
    Case("lhco-raw-frame-is-1d", lambda t: _lhco_raw(t, _series()), ["raw.h5", "expected 2100"]),
    Case("adc2021-particles-wrong-shape",
         lambda t: _adc(t, lambda h: h.create_dataset("Particles", data=np.zeros((2, 19, 3)))),
         ["adc.h5", "Particles", "(2, 19, 3)"]),
    Case("adc2021-particles-is-a-group", lambda t: _adc(t, lambda h: h.create_group("Particles")),
         ["adc.h5", "no dataset 'Particles'"]),
    Case("convert-feature-table", lambda t: ["data", "convert", *_lhco_scalars(t, np.ones((4, 3)))[2:], str(t / "o.h5")],
         ["sig.h5", "tabular features"]),
]

CASES: list[Case] = [*LINE_CASES, *FILE_CASES]
