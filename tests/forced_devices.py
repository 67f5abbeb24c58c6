"""The environment of a JAX subprocess that sees `devices` CPU devices: XLA_FLAGS is appended to,
so that flags given from outside (CI's --xla_cpu_max_isa=AVX2 rerun) still apply there. The count
must be set before JAX starts, hence a subprocess for each count a test needs."""

import os


def forced_devices_env(devices: int) -> dict:
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
