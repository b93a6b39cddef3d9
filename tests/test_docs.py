"""The docs cannot rot: their Python examples run (doctest over docs/*.md), every shell command in them
parses with the real command-line parser (``tfp-anomaly``, the benchmark and example scripts, ``make``
targets) with its configuration overrides checked against the configuration keys, every inline command
names real sub-commands and options, every import in their Python blocks resolves, and the API
reference is what the code says. The cheap commands (``data``, ``--print-config``) also run here, on
embedded-sample files standing in for the placeholders; running the others is the business of the
tests of each command (test_cache_and_cli, test_experiment, test_tuning, test_demo, test_trigger,
test_examples)."""
import argparse
import doctest
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCTEST_PAGES = [p for p in PAGES[1:] if ">>>" in p.read_text()]
#: shell variables of the SLURM example (docs/tuning.md), given sample values
VARIABLES = {"ROLE": "worker", "CHIEF": "node001", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
#: commands the docs show that are not ours (installing, the SLURM example's shell)
FOREIGN = ("python -m venv", "pip ", ".venv/bin/pip", "scontrol", "sbatch", "srun", "cd ")


@pytest.mark.parametrize("page", DOCTEST_PAGES, ids=[p.name for p in DOCTEST_PAGES])
def test_doc_examples_run(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} failed"


# --------------------------------------------------------------------------- finding the commands

def fenced(text: str, languages) -> list[tuple[int, str]]:
    """(line number, line) of the fenced blocks of ``languages``, continuation lines joined."""
    out, inside, pending = [], False, ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = not inside and line[3:].strip() in languages
            continue
        if inside:
            pending += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
            if not line.rstrip().endswith("\\"):
                out.append((number, pending))
                pending = ""
    return out


def shell_commands(line: str) -> list[list[str]]:
    """The commands of one shell line: comments dropped, ``&&`` lists split, ``&`` dropped, variables
    substituted; assignments and comment lines give none."""
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES.get(m.group(1), m.group(0)), line)
    if re.match(r"\s*(#|\w+=)", line) or not line.strip():
        return []
    commands, current = [], []
    for token in shlex.split(line, comments=True):
        if token in ("&&", "&", ";"):
            commands, current = commands + [current], []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def page_commands():
    for page in PAGES:
        for number, line in fenced(page.read_text(), ("bash", "sh", "console")):
            for argv in shell_commands(line):
                if not " ".join(argv).startswith(FOREIGN):
                    yield pytest.param(argv, id=f"{page.name}:{number}:{' '.join(argv[:3])}")


def inline_commands():
    pattern = re.compile(r"`(?:time )?((?:tfp-anomaly |python (?:benchmarks|examples)/|make )[^`]*)`")
    for page in PAGES + sorted((ROOT / "examples" / "configs").glob("*.yaml")):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for match in pattern.finditer(line):
                yield pytest.param(shlex.split(match.group(1)), id=f"{page.name}:{number}:{match.group(1)[:40]}")


# --------------------------------------------------------------------------- checking them

class Parsed(Exception):
    """Raised by the patched ``parse_args`` once a script's arguments parsed: the script stops there."""


def _script_arguments(path: Path, argv: list, monkeypatch) -> argparse.Namespace:
    """Parse ``argv`` with the script's own parser, running its ``main`` only until it parses."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(path.parent))
    spec.loader.exec_module(module)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(Parsed) as parsed:
        module.main(argv)
    return parsed.value.args[0]


def _check_configuration(args: argparse.Namespace) -> None:
    """A repository configuration with the command's overrides loads with every key known."""
    config = getattr(args, "config", None)
    if config and (ROOT / config).exists():
        config_lib.load_config(ROOT / config, getattr(args, "override", None) or ())


def _make_targets() -> set:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def _check_full(argv: list, monkeypatch) -> None:
    if argv[0] == "tfp-anomaly":
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"`{' '.join(argv)}` does not parse (the parser's message is above)")
        _check_configuration(args)
        for value in vars(args).values():  # files of the repository it names exist
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item.startswith(("examples/", "benchmarks/", "docs/")):
                    assert (ROOT / item).exists(), f"`{' '.join(argv)}` names {item}, which does not exist"
    elif argv[0] in ("python", "python3") and argv[1].startswith(("benchmarks/", "examples/")):
        assert (ROOT / argv[1]).exists(), f"no script {argv[1]}"
        _script_arguments(ROOT / argv[1], argv[2:], monkeypatch)
    elif argv[0] == "make":
        assert set(argv[1:]) <= _make_targets(), f"`{' '.join(argv)}`: no such Makefile target"
    else:
        pytest.fail(f"the docs show `{' '.join(argv)}`, which no test checks: add it here or to FOREIGN")


@pytest.mark.parametrize("argv", list(page_commands()))
def test_doc_command_parses(argv, monkeypatch):
    _check_full(argv, monkeypatch)


def _runs_in_seconds(argv: list) -> bool:
    """The doc commands cheap enough to run for real here: the data commands and printing a configuration
    (training, scoring, tuning and exporting run in their own tests)."""
    return argv[:2] == ["tfp-anomaly", "data"] or "--print-config" in argv


def _with_sample_files(argv: list, tmp_path: Path) -> list:
    """``argv`` with the event files it names (placeholders such as ``bkg.csv``) made in ``tmp_path``:
    a CSV to read is 300 embedded-sample events, a ``.root`` file 300 events of a Delphes-like tree
    (tests/rootfiles.py), anything else is an output path there."""
    from rootfiles import write_delphes
    from tfp_anomaly.data import load_sample, write_darkmachines

    out = []
    for word in argv:
        if word.endswith((".csv", ".csv.gz", ".h5", ".root")) and not (ROOT / word).exists():
            path = tmp_path / Path(word).name
            if word.endswith((".csv", ".csv.gz")) and not path.exists():
                write_darkmachines(load_sample()[:300], path)
            if word.endswith(".root") and not path.exists():
                write_delphes(path, 300)
            word = str(path)
        out.append(word)
    return out


@pytest.mark.parametrize("argv", [p for p in page_commands() if _runs_in_seconds(p.values[0])])
def test_cheap_doc_commands_run(argv, tmp_path, capsys):
    from tfp_anomaly.cli import main

    assert main(_with_sample_files(argv, tmp_path)[1:]) == 0, capsys.readouterr().err


def _subparser(parser, words):
    """The sub-command parser that ``words`` lead to, and the words left."""
    while words and parser._subparsers is not None:
        choices = parser._subparsers._group_actions[0].choices
        if words[0] not in choices:
            break
        parser, words = choices[words[0]], words[1:]
    return parser, words


@pytest.mark.parametrize("argv", list(inline_commands()))
def test_inline_command_names_real_options(argv, monkeypatch):
    """Commands quoted in prose may leave out required arguments, but what they name must exist."""
    if argv[0] != "tfp-anomaly":
        _check_full(argv, monkeypatch)
        return
    parser, rest = _subparser(build_parser(), argv[1:])
    assert parser._subparsers is None, f"`{' '.join(argv)}`: does not name a sub-command"  # a leaf, not the top
    options = [word.split("=")[0] for word in rest if word.startswith("-")]
    unknown = [option for option in options if option not in parser._option_string_actions]
    assert not unknown, f"`{' '.join(argv)}`: unknown option(s) {unknown}"


def test_every_page_is_checked():
    """The extraction finds the commands (a regression here would make the tests above vacuous)."""
    assert len(list(page_commands())) >= 30 and len(list(inline_commands())) >= 20


# --------------------------------------------------------------------------- Python blocks

def python_imports():
    for page in PAGES:
        for number, line in fenced(page.read_text(), ("python",)):
            match = re.match(r"\s*from (\S+) import (.+)", line.split("#")[0])
            if match and match.group(1).split(".")[0] in ("tfp_anomaly", "tuning"):
                names = [n.strip().split(" as ")[0] for n in match.group(2).strip("() ").split(",") if n.strip()]
                yield pytest.param(match.group(1), names, id=f"{page.name}:{number}")


@pytest.mark.parametrize("module,names", list(python_imports()))
def test_python_block_imports_resolve(module, names):
    imported = importlib.import_module(module)
    missing = [n for n in names if not hasattr(imported, n) and importlib.util.find_spec(f"{module}.{n}") is None]
    assert not missing, f"from {module} import: {missing} do not exist"


# --------------------------------------------------------------------------- the API reference

def test_api_reference_is_what_the_code_says():
    """docs/api.md is generated from the docstrings; a changed signature or docstring must regenerate it."""
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    build_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_api)
    assert (ROOT / "docs" / "api.md").read_text() == build_api.build(), \
        "docs/api.md is out of date: run `python docs/build_api.py` (make docs)"


def test_every_page_is_reachable_from_the_readme():
    """A page nobody links to is a page nobody reads: the README names every page of docs/."""
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if p.name not in readme]
    assert not missing, f"README.md does not mention {missing}"
