"""Baseline ConvVAE against the same ConvVAE with normalizing-flow posteriors (full flow ELBO).

    python examples/compare_flows.py [--quick] [--out runs/compare_flows] [--flows planar iaf ...]
    python examples/compare_flows.py --background BKG.csv --signal SIG1.csv SIG2.csv

Every model shares the encoder, decoder, latent size and training settings; only the posterior
changes. Default data: the embedded sample.
"""
import argparse
import sys

from tfp_anomaly.demo import BASE, CONV, ELBO, add_comparison_arguments, comparison_inputs, print_result, run_comparison

#: name → (flow chain, step options); the families of the flow library, at the usual depths
FLOWS = {
    "planar": ("planar*6", {"amortized": True}),
    "radial": ("radial*6", {"amortized": True}),
    "sylvester_householder": ("sylvester_householder*4", {"amortized": True, "num_householder": 8}),
    "sylvester_orthogonal": ("sylvester_orthogonal*4", {"amortized": True}),
    "iaf": ("iaf, reverse, iaf, reverse, iaf, reverse, iaf", {"hidden_units": [64, 64]}),
    "realnvp": ("realnvp*4", {"hidden_units": [64, 64]}),
    "glow": ("glow*3", {"hidden_units": [64, 64]}),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_comparison_arguments(parser, "runs/compare_flows")
    parser.add_argument("--flows", nargs="+", default=["planar", "sylvester_householder", "iaf", "realnvp"],
                        choices=list(FLOWS))
    args = parser.parse_args(argv)
    base, settings = comparison_inputs(args, BASE)
    models = {"ConvVAE": {"type": "vae", **CONV, **ELBO}}
    for name in args.flows:
        chain, options = FLOWS[name]
        models[f"ConvVAE + {name}"] = {"type": "vae", **CONV, **ELBO, "flow": chain, "flow_kwargs": options}
    result = run_comparison(models, args.out, base, settings, args.published, title="ConvVAE posteriors")
    print_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
