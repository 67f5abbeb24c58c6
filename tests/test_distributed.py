"""The peer watcher's report (wsolax.training.distributed.missing_processes), by hand: which
processes a running process names as stopped, from the coordination service's live nodes."""

from wsolax.training.distributed import missing_processes


def test_all_live_reports_nothing():
    assert missing_processes([0, 1, 2], 3, 0) is None


def test_the_stopped_peers_are_named():
    assert missing_processes([0, 2], 3, 0) == "process(es) [1] of 3 stopped"
    assert missing_processes([1], 3, 1) == "process(es) [0, 2] of 3 stopped"


def test_a_running_process_never_names_itself():
    # Process 1 was killed mid-collective; process 0's collective failed with it, and the service
    # counts both as stopped. Process 0 is running: it names process 1 only.
    assert missing_processes([], 2, 0) == "process(es) [1] of 2 stopped"
    assert missing_processes([1], 2, 0) == "the coordination service counts process 0 as stopped"
