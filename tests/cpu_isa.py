"""Which XLA:CPU instruction sets this machine can run: its own, and AVX2 when its own is wider
(AVX-512). On an AVX2 machine `--xla_cpu_max_isa=AVX2` is its own set, so a second run would
repeat the first exactly."""

import platform
from pathlib import Path


def wider_than_avx2() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():  # not Linux: cannot tell, so check both
        return True
    return "avx512f" in cpuinfo.read_text().split()


ISAS = ["native", "AVX2"] if wider_than_avx2() else ["native"]
