"""Command-line entry points behind train.py and eval.py: parse flags, call wsolax, report errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsolax.config import ConfigError, load_config


def _parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, allow_abbrev=False)
    p.add_argument("--config", required=True, help="configs/<name>.py[:arg]")
    p.add_argument("--workdir", default=None, help="output folder (default: config.workdir)")
    return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    overrides = [a for a in argv if a.startswith("--config.")]
    rest = [a for a in argv if not a.startswith("--config.")]
    return rest, overrides


def guarded(run) -> int:
    """Run `run()`; user-facing errors (config, data, checkpoint) become one line and exit code 2;
    a run stopped at a non-finite loss (`train.stop_on_nonfinite`) one line and exit code 3."""
    from wsolax.data.metadata import DatasetError
    from wsolax.checkpoint import CheckpointError
    from wsolax.training.nonfinite import NonFiniteLoss

    try:
        run()
    except NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ConfigError, DatasetError, CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _add_multihost_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--multihost", action="store_true",
                   help="start a multi-process run first (one process per host, or several on "
                        "one machine): the cluster is auto-detected on Cloud TPU, SLURM, Open MPI, "
                        "Kubernetes; elsewhere give the three flags below")
    p.add_argument("--coordinator", default=None,
                   help="host:port of process 0's coordinator (env WSOLAX_COORDINATOR)")
    p.add_argument("--num-processes", type=int, default=None,
                   help="number of processes (env WSOLAX_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None,
                   help="this process's index, 0 .. N-1 (env WSOLAX_PROCESS_ID)")
    p.add_argument("--heartbeat-timeout", type=int, default=None,
                   help="seconds without a peer's heartbeat before a process gives up "
                        "(env WSOLAX_HEARTBEAT_TIMEOUT, default 30)")


def _start_multihost(args) -> None:
    if args.multihost:
        from wsolax.training import distributed
        distributed.initialize(distributed.ProcessSetup.from_env(
            args.coordinator, args.num_processes, args.process_id, args.heartbeat_timeout))


def _finish_multihost(args) -> None:
    """Every process waits for the others before it exits (see distributed.finish)."""
    if args.multihost:
        from wsolax.training import distributed
        distributed.finish()


def train_main(argv: list[str]) -> int:
    rest, overrides = split_overrides(argv)
    p = _parser("Train a WSOL model, checkpoint it, then evaluate it.")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    _add_multihost_flags(p)
    args = p.parse_args(rest)

    def run():
        cfg = load_config(args.config, overrides)
        _start_multihost(args)
        from wsolax.localization.run import evaluate, print_summary
        from wsolax.training.loop import train
        workdir = Path(args.workdir or cfg.workdir)
        if args.no_eval:  # nothing is evaluated after training, so its splits are not checked
            cfg.eval.after_training = False
        result = train(cfg, workdir, resume=args.resume)
        print(f"trained {result.steps_done} steps ({result.total_steps} in the schedule); "
              f"checkpoints in {workdir / 'checkpoints'}")
        if cfg.eval.after_training and not args.no_eval:
            print_summary(evaluate(cfg, workdir))
        _finish_multihost(args)

    return guarded(run)


def eval_main(argv: list[str]) -> int:
    rest, overrides = split_overrides(argv)
    p = _parser("Evaluate a trained WSOL checkpoint (MaxBoxAcc, MaxBoxAccV2, PxAP, Top-1/GT-known Loc).")
    p.add_argument("--split", action="append", default=None,
                   help="split(s) to evaluate (default: config.eval.splits)")
    _add_multihost_flags(p)
    args = p.parse_args(rest)

    def run():
        cfg = load_config(args.config, overrides)
        _start_multihost(args)
        from wsolax.localization.run import evaluate, print_summary
        print_summary(evaluate(cfg, Path(args.workdir or cfg.workdir), splits=args.split))
        _finish_multihost(args)

    return guarded(run)


def convert_main(argv: list[str]) -> int:
    rest, overrides = split_overrides(argv)
    p = argparse.ArgumentParser(description="Convert ImageNet weights (.pth weights-only, "
                                ".safetensors) for a config's backbone.", allow_abbrev=False)
    p.add_argument("--config", required=True, help="configs/<name>.py[:arg]")
    p.add_argument("--weights", required=True, help="torchvision .pth or timm .safetensors file")
    p.add_argument("--out", default=None, help="output .safetensors (default: config.model.init_from)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="fully unpickle a .pth you trust (default: torch.load(weights_only=True))")
    p.add_argument("--allow-missing", action="store_true",
                   help="keep the initialisation for tensors the file lacks instead of failing")
    p.add_argument("--layout", default="torchvision", choices=("torchvision", "wsolevaluation"),
                   help="the file's names: torchvision/timm ImageNet weights (default), or a "
                        "whole model trained by the CVPR'20 benchmark's code (wsolevaluation "
                        "*_checkpoint.pth.tar)")
    p.add_argument("--eval-workdir", default=None,
                   help="also write a run folder holding the converted model as its checkpoint, "
                        "for `python eval.py --workdir` (whole-model layouts)")
    args = p.parse_args(rest)

    def run():
        cfg = load_config(args.config, overrides)
        from wsolax.weights.for_config import convert_for_config
        path, report = convert_for_config(cfg, args.weights, args.out,
                                          allow_pickle=args.allow_pickle,
                                          strict=not args.allow_missing, layout=args.layout)
        print(report.summary())
        print(f"saved {path}; train with --config.model.init_from={path}")
        if args.eval_workdir:
            from wsolax.training.converted_run import write_eval_run
            workdir = write_eval_run(cfg, path, args.eval_workdir)
            print(f"wrote {workdir}; evaluate with python eval.py --config {args.config} "
                  f"--workdir {workdir}")

    return guarded(run)


def export_main(argv: list[str]) -> int:
    rest, overrides = split_overrides(argv)
    p = _parser("Save a trained run's weights for another run's --config.model.init_from.")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--only", default="all", choices=("all", "backbone"),
                   help="'backbone': leave the heads out, so they start fresh (fine-tuning)")
    args = p.parse_args(rest)

    def run():
        cfg = load_config(args.config, overrides)
        from wsolax.weights.from_checkpoint import export_checkpoint
        path = export_checkpoint(cfg, Path(args.workdir or cfg.workdir), args.out, part=args.only)
        print(f"saved {path}; train with --config.model.init_from={path}")

    return guarded(run)
