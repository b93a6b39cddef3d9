"""Bad-input cases: config (see tests/bad_inputs/__init__.py).

Every fixed configuration key with a value of the wrong type or out of range, model options
(``latent_dim``, the flow spec, ``flow_kwargs``, ``prior_kwargs``), configuration files that are binary,
directories or broken, output paths of the wrong kind, damaged run directories given to ``score`` and
``export-hls``, damaged score files given to ``report``. Each fails before any data is read, model
built or file written: the run directory of a refused ``train`` is never created.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import Case

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
SAVED_RUN = ROOT / "tests" / "data" / "run_v0_swae"


def train(*overrides: str, config: str = "swae.yaml"):
    """``train CONFIG --run-dir TMP/run -o OVERRIDES`` on an example configuration (embedded sample)."""
    def setup(tmp: Path):
        return ["train", CONFIGS / config, "--run-dir", tmp / "run", *(["-o", *overrides] if overrides else [])]
    return setup


def vae(*overrides: str):
    return train(*overrides, config="convvae_planar.yaml")


def config_file(text: str, name: str = "bad.yaml", base: tuple[str, str] | None = None):
    """``train TMP/name`` of a configuration file with ``text`` (and a base file ``base = (name, text)``)."""
    def setup(tmp: Path):
        if base is not None:
            (tmp / base[0]).write_text(base[1])
        (tmp / name).write_text(text)
        return ["train", tmp / name, "--run-dir", tmp / "run"]
    return setup


MINIMAL = "data: {background: sample}\nmodel: {type: swae, latent_dim: 2}\n"


def binary_config(tmp: Path):
    (tmp / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    return ["train", tmp / "config.yaml", "--run-dir", tmp / "run"]


def directory_config(tmp: Path):
    (tmp / "configs").mkdir()
    return ["train", tmp / "configs", "--run-dir", tmp / "run"]


def run_dir_is_a_file(tmp: Path):
    (tmp / "run.txt").write_text("my notes\n")
    return ["train", CONFIGS / "swae.yaml", "--run-dir", tmp / "run.txt"]


def run_dir_under_a_file(tmp: Path):
    (tmp / "runs").write_text("not a folder\n")
    return ["train", CONFIGS / "swae.yaml", "--run-dir", tmp / "runs" / "swae"]


def run_dir_holds_other_files(tmp: Path):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("not a run\n")
    return ["train", CONFIGS / "swae.yaml", "--run-dir", tmp / "mine"]


def overwrite_would_delete_other_files(tmp: Path):
    run = tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text(MINIMAL)
    (run / "thesis.tex").write_text("\\documentclass{article}\n")
    return ["train", CONFIGS / "swae.yaml", "--run-dir", run, "--overwrite"]


# --------------------------------------------------------------------------- damaged run directories
def saved_run(tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(SAVED_RUN, run)
    return run


def score_with(config_text: str | None = None, model: bytes | None = None, command: str = "score"):
    def setup(tmp: Path):
        run = saved_run(tmp)
        if config_text is not None:
            (run / "config.yaml").write_text(config_text)
        if model is not None:
            (run / "model.keras").write_bytes(model)
        return [command, run] if command == "score" else [command, run, "--out", tmp / "hls"]
    return setup


def truncated_model(tmp: Path):
    run = saved_run(tmp)
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    return ["score", run]


def not_a_run(tmp: Path):
    (tmp / "results").mkdir()
    return ["score", tmp / "results"]


# --------------------------------------------------------------------------- report
def scores_file(tmp: Path) -> Path:
    import numpy as np

    from tfp_anomaly.report import ScoredRun

    rng = np.random.default_rng(0)
    scored = ScoredRun("run", {"type": "swae"}, {"mse": rng.normal(size=200)},
                       {"signal": {"mse": rng.normal(1.0, size=100)}})
    (tmp / "run").mkdir()
    return scored.save(tmp / "run" / "scores.h5")


def report_truncated_scores(tmp: Path):
    path = scores_file(tmp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return ["report", tmp / "run", "--out", tmp / "report"]


def report_scores_not_hdf5(tmp: Path):
    (tmp / "run").mkdir()
    (tmp / "run" / "scores.h5").write_text("event,score\n1,0.5\n")
    return ["report", tmp / "run", "--out", tmp / "report"]


def report_out_is_a_file(tmp: Path):
    scores_file(tmp)
    (tmp / "report.html").write_text("<html></html>\n")
    return ["report", tmp / "run", "--out", tmp / "report.html"]


def report_published_missing(tmp: Path):
    scores_file(tmp)
    return ["report", tmp / "run", "--out", tmp / "report", "--published", tmp / "challenge.csv"]


def demo_out_is_a_file(tmp: Path):
    (tmp / "demo").write_text("")
    return ["demo", "--out", tmp / "demo", "--quick"]


def generate_out_is_a_directory(tmp: Path):
    (tmp / "events").mkdir()
    return ["generate", "--process", "ttbar", "--events", "10", "--out", tmp / "events"]


CASES: list[Case] = [
    # training: types and ranges, before any data is read
    Case("config-epochs-text", train("training.epochs=abc"), ["training.epochs = 'abc'", "a whole number >= 1"]),
    Case("config-epochs-zero", train("training.epochs=0"), ["training.epochs = 0", ">= 1"]),
    Case("config-epochs-fraction", train("training.epochs=1.5"), ["training.epochs = 1.5", "whole number"]),
    Case("config-epochs-negative", train("training.epochs=-1"), ["training.epochs = -1", ">= 1"]),
    Case("config-learning-rate-negative", train("training.learning_rate=-1"),
         ["training.learning_rate = -1", "a number > 0"]),
    Case("config-learning-rate-text", train("training.learning_rate=fast"), ["training.learning_rate", "a number"]),
    Case("config-learning-rate-infinite", train("training.learning_rate=.inf"), ["training.learning_rate", "> 0"]),
    Case("config-batch-size-zero", train("training.batch_size=0"), ["training.batch_size = 0", ">= 1"]),
    Case("config-clipnorm-text", train("training.clipnorm=abc"), ["training.clipnorm = 'abc'", "null or a number > 0"]),
    Case("config-early-stopping-text", train("training.early_stopping=abc"),
         ["training.early_stopping = 'abc'", "a whole number >= 1", "patience"]),
    Case("config-early-stopping-misspelt", train("training.early_stopping={patiense: 3}"),
         ["training.early_stopping.patiense", "patience"]),
    Case("config-jit-compile-maybe", train("training.jit_compile=maybe"),
         ["training.jit_compile = 'maybe'", "auto", "true or false"]),
    Case("config-steps-per-execution-zero", train("training.steps_per_execution=0"),
         ["training.steps_per_execution = 0", ">= 1"]),
    Case("config-verbose-three", train("training.verbose=3"), ["training.verbose = 3", "from 0 to 2"]),
    Case("config-seed-negative", train("training.seed=-3"), ["training.seed = -3", ">= 0"]),
    Case("config-tensorboard-text", train("training.tensorboard=yes please"),
         ["training.tensorboard", "true or false"]),
    Case("config-flow-training-unknown", vae("training.flow_training=stages"),
         ["training.flow_training = 'stages'", "joint", "staged", "flow_warmup"]),
    Case("config-first-stage-beyond-epochs", vae("training.first_stage_epochs=50", "training.epochs=10"),
         ["training.first_stage_epochs = 50", "training.epochs = 10"]),
    # data, grid, scaler, split
    Case("config-on-error-ignore", train("data.on_error=ignore"), ["data.on_error = 'ignore'", "raise, skip"]),
    Case("config-format-unknown", train("data.format=foo"), ["data.format = 'foo'", "auto", "darkmachines"]),
    Case("config-unit-unknown", train("data.unit=TeV"), ["data.unit = 'TeV'", "MeV", "GeV"]),
    Case("config-max-events-negative", train("data.max_events=-5"), ["data.max_events = -5", ">= 1"]),
    Case("config-max-events-text", train("data.max_events=all"), ["data.max_events = 'all'", "null"]),
    Case("config-nonfinite-unknown", train("data.nonfinite=zero"), ["data.nonfinite = 'zero'", "drop"]),
    Case("config-background-empty-list", train("data.background=[]"), ["data.background = []", "a file name"]),
    Case("config-grid-preset-unknown", train("grid.preset=foo"), ["grid.preset = 'foo'", "darkflow", "adc2021"]),
    Case("config-grid-feature-unknown", train("grid.features=[E, pt, rapidity]"),
         ["grid.features[2] = 'rapidity'", "eta"]),
    Case("config-grid-block-cap-zero", train("grid.blocks=[[j, 0]]"), ["grid.blocks[0][1] = 0", ">= 1"]),
    Case("config-grid-block-code-unknown", train("grid.blocks=[[tau, 2]]"), ["grid.blocks[0][0] = 'tau'", "j, b"]),
    Case("config-grid-met-row-text", train("grid.met_row=sometimes"), ["grid.met_row", "true or false"]),
    Case("config-split-two-fractions", train("split.fractions=[0.5, 0.5]"),
         ["split.fractions = [0.5, 0.5]", "three numbers"]),
    Case("config-split-fractions-sum", train("split.fractions=[0.6, 0.3, 0.3]"), ["split.fractions", "summing to 1"]),
    Case("config-split-no-validation", train("split.fractions=[0.8, 0, 0.2]"),
         ["split.fractions", "train and validation > 0"]),
    Case("config-scaler-unknown", train("scaler.name=zscore"), ["scaler.name = 'zscore'", "standard", "robust"]),
    Case("config-scaler-log-column-negative", train("scaler.log_columns=[0, -1]"),
         ["scaler.log_columns[1] = -1", ">= 0"]),
    Case("config-scaler-option-of-another-scaler", train("scaler.n_quantiles=100"),
         ["scaler.n_quantiles", "'standard' scaler", "log_columns"]),
    # model options
    Case("config-latent-dim-zero", train("model.latent_dim=0"), ["model.latent_dim = 0", ">= 1"]),
    Case("config-ensemble-zero", train("model.ensemble=0"), ["model.ensemble = 0", ">= 1"]),
    Case("config-beta-negative", vae("model.beta=-1"), ["model.beta = -1", ">= 0"]),
    Case("config-num-projections-text", train("model.num_projections=many"), ["model.num_projections", "whole number"]),
    Case("config-flow-repeat-zero", vae("model.flow=planar*0"), ["model.flow", "planar*0", ">= 1"]),
    Case("config-flow-repeat-text", vae("model.flow=planar*six"), ["model.flow", "planar*six", ">= 1"]),
    Case("config-flow-unknown", vae("model.flow=planer*2"), ["model.flow", "unknown flow 'planer'", "planar"]),
    Case("config-flow-kwargs-misspelt", vae("model.flow_kwargs={amortised: true}"),
         ["model.flow_kwargs", "amortised", "amortized"]),
    Case("config-flow-step-option-misspelt", vae("model.flow=[{name: maf, hiden_units: [8]}]", "model.flow_kwargs={}"),
         ["model.flow", "hiden_units", "hidden_units"]),
    Case("config-prior-unknown", train("model.prior=banana"), ["model.prior", "banana", "gaussian"]),
    Case("config-prior-kwargs-misspelt", train("model.prior=ring", "model.prior_kwargs={radius: 1, noise: 0.1}"),
         ["model.prior_kwargs", "'noise'", "radial_noise"]),
    Case("config-reconstruction-unknown", train("model.reconstruction=msq"), ["model.reconstruction", "msq", "mse"]),
    Case("config-model-option-of-another-model", train("model.beta=2"), ["model: unknown option 'beta'", "lam"]),
    Case("config-model-not-a-mapping", train("model=swae"), ["section 'model' must be a mapping"]),
    # configuration files
    Case("config-file-binary", binary_config, ["config.yaml", "not a text", "UTF-8"]),
    Case("config-file-directory", directory_config, ["configs", "is a directory"]),
    Case("config-file-bad-value", config_file(MINIMAL + "training: {epochs: ten}\n"),
         ["bad.yaml", "training.epochs = 'ten'"]),
    Case("config-file-bad-value-in-base", config_file(MINIMAL + "base: common.yaml\n",
                                                      base=("common.yaml", "split: {seed: -1}\n")),
         ["common.yaml", "split.seed = -1"]),
    Case("config-file-base-missing", config_file(MINIMAL + "base: common.yaml\n"), ["bad.yaml", "common.yaml"]),
    Case("config-file-base-not-a-name", config_file(MINIMAL + "base: 3\n"), ["bad.yaml", "base = 3"]),
    Case("config-file-invalid-yaml", config_file("model: {type: swae\ndata: [\n"), ["bad.yaml", "not valid YAML"]),
    # where the run goes
    Case("config-run-dir-is-a-file", run_dir_is_a_file, ["run.txt", "not a directory"]),
    Case("config-run-dir-under-a-file", run_dir_under_a_file, ["runs", "is a file, not a directory"]),
    Case("config-run-dir-holds-other-files", run_dir_holds_other_files,
         ["mine", "holds files but no run", "notes.txt"]),
    Case("config-overwrite-would-delete-other-files", overwrite_would_delete_other_files,
         ["--overwrite", "thesis.tex"]),
    Case("config-background-missing-claims-nothing", train("data.background=nothere.csv"),
         ["data.background", "nothere.csv"]),
    # damaged run directories and score files
    Case("config-score-run-config-broken", score_with(config_text="model: {type: swae\nlatent_dim: [\n"),
         ["config.yaml", "not valid YAML"]),
    Case("config-score-run-config-bad-value", score_with(config_text=MINIMAL + "training: {epochs: lots}\n"),
         ["config.yaml", "training.epochs = 'lots'"]),
    Case("config-score-model-truncated", truncated_model, ["model.keras", "corrupt or not a Keras model archive"]),
    Case("config-score-model-not-keras", score_with(model=b"this is not a model\n"),
         ["model.keras", "corrupt or not a Keras model archive"]),
    Case("config-score-not-a-run", not_a_run, ["results", "not a run directory"]),
    Case("config-export-hls-run-config-broken", score_with(config_text="- just\n- a list\n", command="export-hls"),
         ["config.yaml", "not the configuration of a run"]),
    Case("config-report-scores-truncated", report_truncated_scores, ["scores.h5", "truncated or corrupt"]),
    Case("config-report-scores-not-hdf5", report_scores_not_hdf5, ["scores.h5", "truncated or corrupt"]),
    Case("config-report-out-is-a-file", report_out_is_a_file, ["--out", "report.html", "not a directory"]),
    Case("config-report-published-missing", report_published_missing, ["--published", "challenge.csv"]),
    Case("config-demo-out-is-a-file", demo_out_is_a_file, ["--out", "demo", "not a directory"]),
    Case("config-generate-out-is-a-directory", generate_out_is_a_directory, ["--out", "events", "is a directory"]),
]
