"""Starting a multi-process JAX run: one process per host (or several on one machine).

Where a cluster manager is detected (Cloud TPU, SLURM, Open MPI, Kubernetes) `jax.distributed`
finds the coordinator, process count and id itself. Anywhere else they are given explicitly, by
flags or environment variables (flags win):

  WSOLAX_COORDINATOR=host:port   WSOLAX_NUM_PROCESSES=N   WSOLAX_PROCESS_ID=i

On CPU the collectives between processes go through gloo. A process whose peer dies notices it at
the next collective or when the peer's heartbeat is missed (`heartbeat_timeout` seconds), and
exits instead of waiting forever. A process that completes calls `finish()`, so that no process
leaves while another still works (the other's watcher would take the normal exit for a death).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading

import jax
from jax._src import distributed as _jax_distributed


@dataclasses.dataclass(frozen=True)
class ProcessSetup:
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    heartbeat_timeout: int = 30

    @classmethod
    def from_env(cls, coordinator=None, num_processes=None, process_id=None,
                 heartbeat_timeout=None) -> "ProcessSetup":
        env = os.environ
        number = lambda v: None if v in (None, "") else int(v)  # noqa: E731
        return cls(
            coordinator=coordinator or env.get("WSOLAX_COORDINATOR") or None,
            num_processes=num_processes if num_processes is not None
            else number(env.get("WSOLAX_NUM_PROCESSES")),
            process_id=process_id if process_id is not None else number(env.get("WSOLAX_PROCESS_ID")),
            heartbeat_timeout=heartbeat_timeout or int(env.get("WSOLAX_HEARTBEAT_TIMEOUT", 30)))

    def check(self) -> None:
        given = [v is not None for v in (self.coordinator, self.num_processes, self.process_id)]
        if any(given) and not all(given):
            raise ValueError("a multi-process run outside a cluster manager needs all three of "
                             "--coordinator (WSOLAX_COORDINATOR), --num-processes "
                             "(WSOLAX_NUM_PROCESSES) and --process-id (WSOLAX_PROCESS_ID)")
        if self.num_processes is not None:
            if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
                raise ValueError(f"--process-id must be in [0, {self.num_processes}), got "
                                 f"{self.process_id}")
        if self.heartbeat_timeout < 1:
            raise ValueError("--heartbeat-timeout must be >= 1 second")


def initialize(setup: ProcessSetup) -> None:
    """`jax.distributed.initialize` with the explicit setup (or the cluster's, if none given)."""
    setup.check()
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=setup.coordinator,
                               num_processes=setup.num_processes, process_id=setup.process_id,
                               heartbeat_timeout_seconds=setup.heartbeat_timeout)
    if jax.process_count() > 1:
        watch_peers(jax.process_count())


# Set by `finish()`: the watcher stops looking, the run is ending normally.
_FINISHING = threading.Event()
FINISH_TIMEOUT_MS = 30 * 60 * 1000  # the slowest process may still write its last checkpoint


def finish() -> None:
    """Called by every process once its work is done: stop watching the peers, then wait for all
    of them here (a no-op in a single-process run). Without the wait, a process that finishes
    first exits while its peer still writes the final checkpoint, and the peer's watcher would
    stop the peer with exit code 3."""
    if jax.process_count() == 1:
        return
    _FINISHING.set()
    _jax_distributed.global_state.client.wait_at_barrier("wsolax/finish", FINISH_TIMEOUT_MS)


def missing_processes(live, num_processes: int, me: int) -> str | None:
    """What the peer watcher reports for the coordination service's live nodes `live`, seen from
    process `me`; None when all are live. When a peer dies inside a collective, this process's
    collective fails too and the service may then count this process as stopped as well; it is the
    one running this line, so the others are named."""
    missing = sorted(set(range(num_processes)) - set(live))
    if not missing:
        return None
    others = [p for p in missing if p != me]
    if not others:
        return f"the coordination service counts process {me} as stopped"
    return f"process(es) {others} of {num_processes} stopped"


def watch_peers(num_processes: int, interval: float = 1.0) -> threading.Thread:
    """A daemon thread that asks the coordination service which processes are alive and, as soon
    as one is missing, says so in one line and ends this process (exit code 3) instead of letting
    it block in a collective until XLA aborts with a stack trace."""
    client = _jax_distributed.global_state.client
    me = jax.process_index()

    def run():
        while not _FINISHING.wait(interval):
            try:
                live = client.get_live_nodes(list(range(num_processes)))
            except Exception as e:  # noqa: BLE001 - the service itself is gone (process 0 died)
                lost = f"the coordinator is unreachable ({' '.join(str(e).split())[:200]})"
            else:
                lost = missing_processes(live, num_processes, me)
                if lost is None or _FINISHING.is_set():
                    continue
            if _FINISHING.is_set():
                return
            print(f"error: {lost}; process {me} stops too. Checkpoints that finished are intact: "
                  f"restart every process with --resume.", file=sys.stderr, flush=True)
            os._exit(3)

    thread = threading.Thread(target=run, name="wsolax-peer-watch", daemon=True)
    thread.start()
    return thread
