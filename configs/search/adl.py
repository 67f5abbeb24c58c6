"""ADL (Choe & Shim, CVPR'19). The reference exposes two knobs (wsolevaluation config.py
`--adl_drop_rate` 0.75, `--adl_threshold` 0.9, wsolax's `drop_rate` and `gamma`); both are
fractions, drawn over their whole domain [0, 1] (as Murtaza et al., arXiv 2404.10034, draw ADL's
knobs; see _common.py for why the CVPR'20 table itself is not cited)."""

from _common import common_space


def get_space():
    return {**common_space(),
            "model.methods.adl.drop_rate": ("uniform", 0.0, 1.0),
            "model.methods.adl.gamma": ("uniform", 0.0, 1.0)}
