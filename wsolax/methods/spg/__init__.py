"""SPG: Self-produced Guidance (Zhang et al., ECCV 2018), as the CVPR'20 benchmark's code builds
it (clovaai/wsolevaluation): pseudo-labels from the CAM's high / low thresholds supervise two
auxiliary branches on intermediate features (B1, B2, one shared head) and a third (C) on the last
ones."""

from wsolax.methods.spg.masks import (attention_loss, bilinear_matrix, class_attention,
                                      fused_attention, masked_bce, min_max_normalize,
                                      pseudo_labels, spg_losses, upsample)
from wsolax.methods.spg.method import (BENCHMARK_HPARAMS, BENCHMARK_STAGES, METHOD,
                                       SPGHparams)
from wsolax.methods.spg.model import SPGHead, SPGTap, collect_taps, spg_apply

__all__ = ["BENCHMARK_HPARAMS", "BENCHMARK_STAGES", "METHOD", "SPGHead", "SPGHparams", "SPGTap",
           "attention_loss", "bilinear_matrix", "class_attention", "collect_taps",
           "fused_attention", "masked_bce", "min_max_normalize", "pseudo_labels", "spg_apply",
           "spg_losses", "upsample"]
