"""The models of the CVPR'20 benchmark's code (Choe et al., "Evaluating WSOL Methods Right",
github.com/clovaai/wsolevaluation), to train them in wsolax or to evaluate checkpoints it trained.

    --config configs/wsolevaluation.py:<dataset>,<method>,<architecture>
    dataset: cub | ilsvrc | openimages;  method: cam | adl | has | cutmix | acol | spg;
    architecture: vgg16 | resnet50 | inception_v3 (its names; wsolax builds vgg16_gap, resnet50,
    inception_v3)

Source: the benchmark's code, not the method papers. ADL uses placement `wsolevaluation`
(wsolax.methods.placements): VGG16 after pool3, after conv4_3 (before pool4) and after conv5_3;
ResNet50 after layer3's first block, layer4's first block and layer4's end; InceptionV3 after
Mixed_5d, Mixed_6e and the second new conv. gamma 0.9 on every backbone (its `--adl_threshold`
default; the ADL paper says 0.8 for VGG and InceptionV3, see configs/cub_adl_vgg16.py), drop rate
0.75. HaS and CutMix train its CAM architecture (config.py `get_architecture_type`) with their
input transform, the same on every backbone, nothing inserted: HaS `--has_grid_size 4` (px, at
224 px crops) and `--has_drop_rate 0.5`; CutMix `--cutmix_beta 1.0` and `--cutmix_prob 1.0`
(wsolax.methods.has, wsolax.methods.cutmix); their checkpoints are CAM checkpoints. The
architectures are wsolax's WSOL variants, which compute what the benchmark's do (docs/backbones.md,
"Checkpoints of the benchmark's code"); `--config.model.large_feature_map=True` is its
`--large_feature_map` (28x28 maps).

Training settings (optimiser as its main.py, its config.py defaults, batch, epochs and decay per
dataset) are configs/_paper.py's, which follows this benchmark for every paper config; the one run
its README spells out (openimages,cam,vgg16) also takes that run's learning rate (README_RUNS).
The other learning rates the benchmark searched per run on train-fullsup; tune `optim.lr` on val.
One difference is left: its InceptionV3 CAM model applies dropout 0.5 around the two new convs
while training, which wsolax does not (evaluation is unaffected).

A checkpoint of that code (`best_checkpoint.pth.tar` / `last_checkpoint.pth.tar`) is read with
    python -m wsolax.convert --layout wsolevaluation \
        --config configs/wsolevaluation.py:cub,adl,vgg16 \
        --weights train_log/<experiment>/best_checkpoint.pth.tar \
        --out weights/<experiment>.safetensors --eval-workdir runs/<experiment>
    python eval.py --config configs/wsolevaluation.py:cub,adl,vgg16 --workdir runs/<experiment>
"""

import _paper

ARCHITECTURES = {"vgg16": "vgg16_gap", "resnet50": "resnet50", "inception_v3": "inception_v3"}
METHODS = ("cam", "adl", "has", "cutmix", "acol", "spg")
# Parameters its main.py trains at 10x the backbone rate (`_FEATURE_PARAM_LAYER_PATTERNS`): on
# VGG16 and InceptionV3 everything outside the torchvision features, on ResNet50 the names holding
# 'layer4.' or 'fc.' -- so ACoL's and SPG's ResNet heads (classifier_*, SPG_*) train at the base
# rate there, while layer4 trains at 10x. wsolax module paths of those parameters:
NEW_LAYER_PREFIXES = {
    ("acol", "vgg16_gap"): ("head",),
    ("acol", "inception_v3"): ("head",),
    ("acol", "resnet50"): ("backbone/layer4_",),
    # SPG_A_1 / SPG_A_2 are VGG's conv4 / conv5 blocks, the B branches live in the two taps
    ("spg", "vgg16_gap"): ("head", "backbone/conv4_", "backbone/conv5_", "backbone/pool4_insert"),
    ("spg", "inception_v3"): ("head", "backbone/extra_pool_insert", "backbone/Mixed_6d_insert"),
    ("spg", "resnet50"): ("backbone/layer4_",),
}
# Runs the benchmark's README gives in full: (dataset, method, architecture) -> backbone lr
# (its example command: OpenImages VGG16 CAM, batch 32, 10 epochs, decay every 3, wd 5e-4).
README_RUNS = {("openimages", "cam", "vgg16"): 0.00227913316}


def get_config(arg: str = "cub,cam,resnet50"):
    from wsolax.methods.placements import paper_inserts, source_hparams

    parts = [p.strip() for p in arg.split(",")]
    if len(parts) != 3:
        raise ValueError(f"configs/wsolevaluation.py takes '<dataset>,<method>,<architecture>', "
                         f"got '{arg}'")
    dataset, method, architecture = parts
    if dataset not in ("cub", "ilsvrc", "openimages"):
        raise ValueError(f"dataset '{dataset}': expected cub, ilsvrc or openimages")
    if method not in METHODS:
        raise ValueError(f"method '{method}': expected one of the benchmark's {', '.join(METHODS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture '{architecture}': expected {', '.join(ARCHITECTURES)}")
    backbone = ARCHITECTURES[architecture]
    placement = "wsolevaluation"  # the source this config follows
    hparams = source_hparams(method, backbone, placement)
    run = README_RUNS.get((dataset, method, architecture))
    c = _paper.paper_config(f"wsolevaluation_{dataset}_{method}_{architecture}", dataset, backbone,
                            inserts=paper_inserts(method, backbone, placement),
                            methods={method: hparams} if hparams else None,
                            **({"lr": run} if run else {}))
    if (method, backbone) in NEW_LAYER_PREFIXES:
        c.optim.new_layer_prefixes = NEW_LAYER_PREFIXES[(method, backbone)]
    return c
