"""Run (or resume, or join) a hyperparameter search:

    python -m wsolax.search --config configs/synthetic_adl.py:finegrained \\
        --space configs/search/adl.py --trials 20 --storage runs/search/adl.db \\
        --out runs/search/adl [--seed 0] [--metric max_box_acc_v2] [--split val] [--config.x=y]

The same command again resumes (finished trials are kept, an interrupted one restarts); run it in
a second shell to add a worker (on several machines: --storage postgresql://...). Ends with
<out>/trials.json and <out>/trials.md. Docs: docs/search.md.
"""

from __future__ import annotations

import argparse
import sys

from wsolax.cli import guarded, split_overrides
from wsolax.config import load_config


def main(argv: list[str]) -> int:
    rest, overrides = split_overrides(argv)
    p = argparse.ArgumentParser(prog="python -m wsolax.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the config every trial starts from")
    p.add_argument("--space", required=True, help="search space file (configs/search/*.py)")
    p.add_argument("--trials", type=int, required=True, help="trials to finish in the study")
    p.add_argument("--storage", required=True, help="SQLite file or Optuna database URL")
    p.add_argument("--out", required=True, help="folder of the trials' runs and the record")
    p.add_argument("--name", default=None, help="study name (default: --out's folder name)")
    p.add_argument("--seed", type=int, default=0, help="seeds the settings drawn and the runs")
    p.add_argument("--metric", default="max_box_acc_v2", help="selection metric on --split")
    p.add_argument("--split", default="val", help="selection split (never test)")
    args = p.parse_args(rest)

    def run():
        from wsolax.search.report import write_report
        from wsolax.search.space import load_space
        from wsolax.search.study import SearchSpec, run_search

        cfg = load_config(args.config, overrides)
        spec = SearchSpec(config=args.config, overrides=tuple(overrides),
                          space=load_space(args.space), metric=args.metric, split=args.split,
                          seed=args.seed)
        study = run_search(cfg, spec, args.trials, args.storage, args.out, name=args.name)
        record = write_report(study, args.out)
        chosen = record["chosen"]
        print(f"[search] done: {len(record['trials'])} trials; chosen: "
              + ("none" if chosen is None else f"trial {chosen['trial']} ({args.metric} "
                 f"{chosen['value']:.2f}) {chosen['params']}")
              + f"; {args.out}/trials.md")

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
