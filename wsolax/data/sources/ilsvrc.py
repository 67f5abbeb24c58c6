"""ILSVRC 2012 (ImageNet-1k) -> the metadata layout.

Reads, under `root`:
  train/<wnid>/*.JPEG     training images; labels 0..999 follow the sorted wnids (the order of
                          torchvision's ImageFolder and of Caffe's synset list)
  val/*.JPEG              validation images, flat (or in val/<wnid>/ folders)
  <bbox dir>/ILSVRC2012_val_00000001.xml ...
                          PASCAL-VOC box files of the validation images: <size> width/height and
                          one <object> per box with <name> (the wnid) and <bndbox>
                          xmin/ymin/xmax/ymax. Found as --bbox-dir, or the first of val_bbox/,
                          bbox_val/, Annotations/CLS-LOC/val/, val/ under `root` holding *.xml.

Train has no boxes: its metadata has no localization.txt (the reader accepts that for the
training split only). Image sizes: train from the image headers (~1.28M small reads, threaded),
val from the XML files, cross-checked against the headers.

Split convention (Choe et al. CVPR'20): train = train, test = the official val. The benchmark's
val is ImageNetV2 with boxes it annotated (10 per class; --val-from its metadata, with the
ImageNetV2 images under `root`). Without it, val is drawn here from the official val set (N per
class, seeded) and removed from test, so test then has 50 - N images per class instead of 50.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from wsolax.data.errors import DatasetError
from wsolax.data.sources.common import (
    Prepared, Problems, Split, check_box, draw_per_class, list_images, measure_sizes,
    read_val_from, rel_id, unreadable, val_from_folder)

NUM_CLASSES = 1000
BBOX_DIRS = ("val_bbox", "bbox_val", "Annotations/CLS-LOC/val", "val")


def _bbox_dir(root: Path, bbox_dir) -> Path:
    if bbox_dir is not None:
        return Path(bbox_dir)
    for name in BBOX_DIRS:
        if (root / name).is_dir() and next((root / name).glob("*.xml"), None) is not None:
            return root / name
    raise DatasetError(f"no folder of validation box XML files under {root} (looked in "
                            f"{', '.join(BBOX_DIRS)}); pass --bbox-dir")


def _read_xml(path: Path, problems: Problems):
    """(wnid, (w, h), boxes) of one VOC file, or None after reporting what is wrong."""
    try:
        tree = ET.parse(path).getroot()
        w = int(tree.findtext("size/width"))
        h = int(tree.findtext("size/height"))
        names, boxes = [], []
        for obj in tree.iter("object"):
            names.append(obj.findtext("name", "").strip())
            box = obj.find("bndbox")
            boxes.append(tuple(float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")))
    except (ET.ParseError, TypeError, ValueError, AttributeError) as e:
        problems.add(str(path), f"not a readable VOC annotation ({type(e).__name__}: {e})")
        return None
    if not boxes:
        problems.add(str(path), "no <object> in the file")
        return None
    # ILSVRC val images show objects of their one class; several classes mean a mixed-up file.
    if len(set(names)) != 1:
        problems.add(str(path), f"objects of {len(set(names))} classes ({', '.join(sorted(set(names)))}); "
                                f"an ILSVRC val image has one class")
        return None
    return names[0], (w, h), boxes


def _train(root: Path, problems: Problems) -> tuple[list[str], dict[str, int]]:
    train_dir = root / "train"
    if not train_dir.is_dir():
        problems.add(str(train_dir), "missing training folder (train/<wnid>/*.JPEG)")
        return [], {}
    wnids = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not wnids:
        problems.add(str(train_dir), "no class folders")
    ids, labels = [], {}
    for label, wnid in enumerate(wnids):
        files = list_images(train_dir / wnid)
        if not files:
            problems.add(str(train_dir / wnid), "class folder has no images")
        for f in files:
            image_id = rel_id(f, root)
            ids.append(image_id)
            labels[image_id] = label
    return wnids, {"ids": ids, "labels": labels}


def convert_ilsvrc(root: str | os.PathLike, *, val_per_class: int = 10, val_from=None,
                   seed: int = 0, bbox_dir=None, workers: int = 16,
                   bad_images: str = "fail") -> Prepared:
    root = Path(root)
    problems = Problems()
    notes: list[str] = []
    wnids, train = _train(root, problems)
    problems.raise_if_any(f"ILSVRC train under {root}")
    label_of = {w: i for i, w in enumerate(wnids)}
    if len(wnids) != NUM_CLASSES:
        notes.append(f"classes: {len(wnids)} class folders (ILSVRC 2012 has {NUM_CLASSES}); "
                     f"labels are 0..{len(wnids) - 1} in sorted wnid order")

    val_dir = root / "val"
    if not val_dir.is_dir():
        raise DatasetError(f"missing validation folder {val_dir}")
    images = {p.stem: p for p in list_images(val_dir)}
    for sub in sorted(d for d in val_dir.iterdir() if d.is_dir()):
        images.update({p.stem: p for p in list_images(sub)})
    xml_dir = _bbox_dir(root, bbox_dir)
    xmls = {p.stem: p for p in sorted(xml_dir.glob("*.xml"))}

    test_ids, labels, sizes, boxes = [], {}, {}, {}
    for stem in sorted(set(images) | set(xmls)):
        if stem not in xmls:
            problems.add(str(images[stem]), f"no box file {stem}.xml in {xml_dir}")
            continue
        if stem not in images:
            problems.add(str(xmls[stem]), f"its image {stem}.JPEG is missing from {val_dir}")
            continue
        parsed = _read_xml(xmls[stem], problems)
        if parsed is None:
            continue
        wnid, size, image_boxes = parsed
        path = images[stem]
        if wnid not in label_of:
            problems.add(str(xmls[stem]), f"class {wnid} has no folder in {root / 'train'}")
            continue
        if path.parent != val_dir and path.parent.name != wnid:
            problems.add(str(xmls[stem]), f"class {wnid} but the image is in {path.parent}")
            continue
        image_id = rel_id(path, root)
        if all([check_box(b, size, f"{xmls[stem]} (object {k + 1})", problems)
                for k, b in enumerate(image_boxes)]):
            test_ids.append(image_id)
            labels[image_id], sizes[image_id], boxes[image_id] = label_of[wnid], size, image_boxes
    problems.raise_if_any(f"ILSVRC val under {root}")

    # The XML sizes are what the boxes refer to; an image of another size would misplace them.
    read, failed = measure_sizes(root, test_ids, workers)
    dropped = unreadable(failed, bad_images, problems, notes, "ILSVRC val images")
    for image_id, size in read.items():
        if size != sizes[image_id]:
            problems.add(str(root / image_id), f"image is {size[0]}x{size[1]} but its XML says "
                                               f"{sizes[image_id][0]}x{sizes[image_id][1]}")
    train_sizes, failed = measure_sizes(root, train["ids"], workers)
    dropped |= unreadable(failed, bad_images, problems, notes, "ILSVRC train images")
    problems.raise_if_any(f"ILSVRC under {root}")

    train_ids = [i for i in train["ids"] if i not in dropped]
    splits = {
        "train": Split(train_ids, {i: train["labels"][i] for i in train_ids},
                       {i: train_sizes[i] for i in train_ids}, None),
        "test": Split(test_ids, labels, sizes, boxes).without(dropped),
    }
    if val_from is not None:
        val_from_folder(splits, read_val_from(val_from, root, len(wnids)), notes, val_from)
    else:
        drawn = draw_per_class(splits["test"], val_per_class, seed, "the official val set",
                               keep_one=False)
        splits["val"] = splits["test"].subset(drawn)
        splits["test"] = splits["test"].without(drawn)
        notes.append(
            f"val: {val_per_class} image(s) per class drawn from the official val set (seed "
            f"{seed}) and removed from test, so test is the rest of the official val. The CVPR'20 "
            f"benchmark's val is ImageNetV2 with its boxes; pass --val-from <its metadata> to "
            f"use it and keep all of the official val as test.")
    return Prepared("ilsvrc", root, len(wnids), {k: splits[k] for k in ("train", "val", "test")},
                    notes)
