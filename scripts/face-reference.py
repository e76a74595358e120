#!/usr/bin/env python3
"""Write the dlib reference fixture for the nhm face pipeline.

Runs dlib's own Python module (the reference implementation) on a few shipped face
images and records what the Rust port has to reproduce:

  * CNN MMOD face detector (dlib.cnn_face_detection_model_v1), upsample_num_times 0 and 1
  * 5-point shape predictor (dlib.shape_predictor) in (a) the largest upsample-1 detection
    and (b) a fixed box equal to the whole image frame
  * the aligned 150x150 chip (dlib.get_face_chip(img, shape_b, size=150, padding=0.25))
    and its chip_details (dlib.get_face_chip_details -> rect, angle, rows, cols)
  * the 128-d descriptor of that chip (compute_face_descriptor(chip)) and of dlib's own
    pipeline (compute_face_descriptor(img, shape_b)), both without jitter.

Usage (from the repository root):

  python3 scripts/face-reference.py --sdist PATH/face_recognition_models-0.3.0.tar.gz \\
      [--data ../shared/data] [--out crates/nhm-model/tests/fixtures/face]

Without --sdist the sdist is fetched with `pip download` (as scripts/convert-dlib-face.py
does); its SHA-256 is checked and the .dat files are extracted to a temp dir.

Output (in --out): reference.json, chip-{k}.png (150x150 RGB), frame-0.png (a 320x240
grey canvas with an ORL face pasted at a fixed offset).  Grey images are converted to
RGB by replicating the channel (what dlib's assign_image does for grey -> rgb_pixel).
All images are processed as uint8 RGB arrays.
"""

import argparse
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image

import dlib

HERE = os.path.dirname(os.path.abspath(__file__))

IMAGES = [
    "orl_faces/s1/1.pgm",
    "orl_faces/s2/5.pgm",
    "orl_faces/s17/3.pgm",
    "extended_yale_b/yaleB01/yaleB01_P00A+000E+00.png",
    "extended_yale_b/yaleB05/yaleB05_P00A+010E+00.png",
]
FRAME_SOURCE = "orl_faces/s3/1.pgm"
FRAME_SIZE = (320, 240)      # width, height
FRAME_OFFSET = (114, 64)     # left, top of the pasted 92x112 face
FRAME_BACKGROUND = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def load_converter():
    sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
    spec = importlib.util.spec_from_file_location("convert_dlib_face",
                                                  os.path.join(HERE, "convert-dlib-face.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def extract_models(conv, sdist, dest):
    with open(sdist, "rb") as f:
        blob = f.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != conv.SDIST_SHA256:
        sys.exit("face-reference: %s: SHA-256 %s != pinned %s" % (sdist, digest, conv.SDIST_SHA256))
    paths, shas = {}, {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        for name in (conv.RESNET_DAT, conv.MMOD_DAT, conv.SP5_DAT):
            data = tf.extractfile(tf.getmember(conv.MODELS_DIR + name)).read()
            p = os.path.join(dest, name)
            with open(p, "wb") as f:
                f.write(data)
            paths[name] = p
            shas[name] = hashlib.sha256(data).hexdigest()
    return digest, paths, shas


def to_rgb(grey_or_rgb):
    a = np.asarray(grey_or_rgb)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise SystemExit("unexpected image array %s %s" % (a.dtype, a.shape))
    return np.ascontiguousarray(a)


def rect_dict(r):
    return {"left": int(r.left()), "top": int(r.top()), "right": int(r.right()),
            "bottom": int(r.bottom())}


def drect_dict(r):
    return {"left": float(r.left()), "top": float(r.top()), "right": float(r.right()),
            "bottom": float(r.bottom())}


def parts_list(shape):
    return [[int(shape.part(i).x), int(shape.part(i).y)] for i in range(shape.num_parts)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", help="face_recognition_models-0.3.0.tar.gz (default: pip download)")
    ap.add_argument("--data", default="../shared/data", help="data root (default ../shared/data)")
    ap.add_argument("--out", default="crates/nhm-model/tests/fixtures/face")
    args = ap.parse_args()

    conv = load_converter()
    os.makedirs(args.out, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or conv.fetch_sdist(tmp)
        sdist_sha, paths, shas = extract_models(conv, sdist, tmp)
        detector = dlib.cnn_face_detection_model_v1(paths[conv.MMOD_DAT])
        predictor = dlib.shape_predictor(paths[conv.SP5_DAT])
        facerec = dlib.face_recognition_model_v1(paths[conv.RESNET_DAT])

    # The deterministic "larger frame" image.
    face = np.asarray(Image.open(os.path.join(args.data, FRAME_SOURCE)).convert("L"))
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0]), FRAME_BACKGROUND, np.uint8)
    fx, fy = FRAME_OFFSET
    frame[fy:fy + face.shape[0], fx:fx + face.shape[1]] = face
    Image.fromarray(frame, "L").save(os.path.join(args.out, "frame-0.png"), optimize=True)

    inputs = [(p, "data", np.asarray(Image.open(os.path.join(args.data, p)))) for p in IMAGES]
    inputs.append(("frame-0.png", "fixture", frame))

    records = []
    for k, (path, root, arr) in enumerate(inputs):
        src_mode = "grey" if arr.ndim == 2 else "rgb"
        img = to_rgb(arr)
        h, w = img.shape[:2]
        rec = {"index": k, "path": path, "root": root, "source_mode": src_mode,
               "width": w, "height": h}
        if root == "fixture":
            rec["construction"] = {
                "source": FRAME_SOURCE, "canvas_width": FRAME_SIZE[0],
                "canvas_height": FRAME_SIZE[1], "background": FRAME_BACKGROUND,
                "paste_left": fx, "paste_top": fy}
        dets = {}
        for up in (0, 1):
            ds = detector(img, up)
            dets["upsample_%d" % up] = [dict(rect_dict(d.rect), confidence=float(d.confidence))
                                        for d in ds]
        rec["detections"] = dets

        # (a) landmarks in the largest upsample-1 detection
        d1 = detector(img, 1)
        if len(d1):
            best = max(d1, key=lambda d: (d.rect.area(), d.confidence))
            sa = predictor(img, best.rect)
            rec["landmarks_detection"] = {"box": rect_dict(best.rect), "parts": parts_list(sa)}
            da = dlib.get_face_chip_details(sa, CHIP_SIZE, CHIP_PADDING)
            rec["chip_detection"] = {
                "details": {"rect": drect_dict(da.rect), "angle": float(da.angle),
                            "rows": int(da.rows), "cols": int(da.cols)},
                "descriptor_pipeline": [float(x) for x in facerec.compute_face_descriptor(img, sa)]}
        else:
            rec["landmarks_detection"] = None
            rec["chip_detection"] = None

        # (b) landmarks in the whole-frame box
        box = dlib.rectangle(0, 0, w - 1, h - 1)
        sb = predictor(img, box)
        rec["landmarks_frame"] = {"box": rect_dict(box), "parts": parts_list(sb)}

        det = dlib.get_face_chip_details(sb, CHIP_SIZE, CHIP_PADDING)
        chip = np.asarray(dlib.get_face_chip(img, sb, size=CHIP_SIZE, padding=CHIP_PADDING))
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise SystemExit("unexpected chip shape %s" % (chip.shape,))
        chip_name = "chip-%d.png" % k
        Image.fromarray(chip, "RGB").save(os.path.join(args.out, chip_name), optimize=True)
        # check the PNG round-trips exactly
        back = np.asarray(Image.open(os.path.join(args.out, chip_name)).convert("RGB"))
        if not np.array_equal(back, chip):
            raise SystemExit("PNG round trip changed %s" % chip_name)
        rec["chip"] = {"file": chip_name, "size": CHIP_SIZE, "padding": CHIP_PADDING,
                       "details": {"rect": drect_dict(det.rect), "angle": float(det.angle),
                                   "rows": int(det.rows), "cols": int(det.cols)}}

        d_chip = np.array(facerec.compute_face_descriptor(chip), dtype=np.float64)
        d_pipe = np.array(facerec.compute_face_descriptor(img, sb), dtype=np.float64)
        rec["descriptor_chip"] = [float(x) for x in d_chip]
        rec["descriptor_pipeline"] = [float(x) for x in d_pipe]
        rec["descriptor_chip_vs_pipeline_max_abs_diff"] = float(np.max(np.abs(d_chip - d_pipe)))
        records.append(rec)
        print("%-52s %dx%d dets(up0)=%d dets(up1)=%d |d|=%.4f" % (
            path, w, h, len(dets["upsample_0"]), len(dets["upsample_1"]), np.linalg.norm(d_chip)))

    out = {
        "format": "nhm-face-reference/1",
        "generator": "scripts/face-reference.py",
        "dlib_version": dlib.__version__,
        "dlib_use_cuda": bool(dlib.DLIB_USE_CUDA),
        "numpy_version": np.__version__,
        "sdist": "face_recognition_models-0.3.0.tar.gz",
        "sdist_sha256": sdist_sha,
        "models_sha256": shas,
        "conventions": {
            "images": "uint8 RGB, grey sources replicated to 3 channels; paths with root=data are "
                      "relative to the --data root (../shared/data), root=fixture relative to this folder",
            "rect": "dlib rectangle, inclusive integer corners (width = right-left+1)",
            "detections": "dlib.cnn_face_detection_model_v1(img, upsample_num_times), in dlib's order "
                          "(descending confidence after NMS); upsampling happens inside dlib (C++ pyramid_up "
                          "with pyramid_down<2>: bilinear to (2H+1)x(2W+2)), rects mapped back with rect_down",
            "landmarks": "dlib.shape_predictor parts, integer pixel coords, dlib 5-point order",
            "chip": "dlib.get_face_chip(img, landmarks_frame, size=150, padding=0.25); details from "
                    "dlib.get_face_chip_details (rect is a drectangle, angle in radians)",
            "descriptor_chip": "facerec.compute_face_descriptor(chip) (num_jitters=0)",
            "descriptor_pipeline": "facerec.compute_face_descriptor(img, landmarks_frame) (num_jitters=0, "
                                   "padding 0.25)",
            "chip_detection": "same chip geometry and pipeline descriptor for landmarks_detection (no PNG "
                              "stored); null when upsample-1 found no face",
        },
        "images": records,
    }
    text = json.dumps(out, indent=1, sort_keys=True)
    # keep number lists (descriptors, points) on one line
    text = re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        f.write(text + "\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print("wrote %s (%d files, %d bytes)" % (args.out, len(os.listdir(args.out)), total))


if __name__ == "__main__":
    main()
