"""`python -m wsolax.validate --config configs/<x>.py [--config.key=value ...] [--splits ...] [--decode]`

Checks the config's dataset without training: a summary per split and every problem found,
grouped by kind. Exit code 0: no problem; 1: problems; 2: the config or dataset could not be read.
The checks live in wsolax.data.validate.
"""

from __future__ import annotations

import argparse
import sys

from wsolax.cli import split_overrides
from wsolax.config import ConfigError, load_config
from wsolax.data.errors import DatasetError


def main(argv: list[str] | None = None) -> int:
    rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m wsolax.validate", allow_abbrev=False,
                                description="Check a config's dataset before training.")
    p.add_argument("--config", required=True, help="configs/<name>.py[:arg]")
    p.add_argument("--splits", nargs="+", default=None,
                   help="splits to check (default: the config's train, val and test splits)")
    p.add_argument("--decode", action="store_true",
                   help="also decode every image and mask (slow for large sets)")
    p.add_argument("--examples", type=int, default=3, help="examples shown per kind of problem")
    args = p.parse_args(rest)

    from wsolax.data.validate import format_reports, has_problems
    from wsolax.datasets import validate_dataset

    try:
        cfg = load_config(args.config, overrides)
        reports = validate_dataset(cfg, args.splits, decode=args.decode)
    except (ConfigError, DatasetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_reports(reports, examples=args.examples))
    return 1 if has_problems(reports) else 0


if __name__ == "__main__":
    sys.exit(main())
