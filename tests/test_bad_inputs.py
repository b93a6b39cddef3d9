"""Every bad input through the real CLI: one line on stderr, exit status 2, the culprit named, no file
changed. The cases live in ``tests/bad_inputs/`` (one table per part of the code) and use the embedded
sample, so this module never skips."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bad_inputs import Case
from bad_inputs.config_cases import CASES as CONFIG_CASES
from bad_inputs.data_cases import CASES as DATA_CASES
from bad_inputs.run_cases import CASES as RUN_CASES
from tfp_anomaly import cli

CASES: list[Case] = [*DATA_CASES, *CONFIG_CASES, *RUN_CASES]


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(a) for a in case.setup(tmp_path)]
    capsys.readouterr()
    before = snapshot(tmp_path)
    status = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("tfp-anomaly: error: "), err
    for text in case.expect:
        assert text in lines[0], (text, lines[0])
    assert snapshot(tmp_path) == before, "a bad input changed, added or removed a file"
