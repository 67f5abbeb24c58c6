"""Equal-budget hyperparameter search (Choe et al. CVPR'20's protocol) on Optuna:
`python -m wsolax.search --help`."""
