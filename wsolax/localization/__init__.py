"""From a trained model to scored localization (JAX): CAM extraction sharded on device, score
maps (exact on the host, or float32 on device), scoring a split with the evaluation protocol of
`wsolax.evaluation` (which imports no JAX), the evaluation run of a checkpoint, its report."""
