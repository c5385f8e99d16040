#!/usr/bin/env python3
"""PyTorch CPU reference of flowgate's normalizing flows, for training-throughput comparisons.

Builds, from the same TOML config (`configs/*.toml`), the same flow that
`trainer/src/flows/mod.rs` builds in burn -- layer for layer, mask for mask, parameter for
parameter -- and trains it the way `trainer/src/training.rs` does:

* batches of Fashion-MNIST train levels (the last `data.validation` images held out), in a
  seeded SplitMix64 Fisher-Yates permutation per epoch (flowgate's former order; the
  trainer now draws its own from rand's StdRng, which does not change a step's cost);
* uniform dequantisation noise, the logit preprocessing with its log-determinant and the
  `-D ln 256` bin width;
* loss = mean negative log-likelihood (nats per image);
* Adam or RMSprop with burn 0.22's defaults (Adam: betas 0.9/0.999, eps 1e-5; RMSprop:
  alpha 0.99, eps 1e-5, momentum 0.9), optional L2 weight decay, global grad-norm clipping
  (`clip_grad_norm_`, as flowgate's `clip_global_norm`);
* `loss.item()` every step (flowgate reads the loss every step too).

Timing: like `flowgate train`, the clock starts after the data is loaded and the model and
optimiser are built, and runs over every step including the first, so
`images/s (all steps)` is measured the way flowgate measures it. `images/s (after warm-up)`
leaves out the first `--warmup` steps.

Checks (optional):

* `--bpk RUN/model.bpk`: reads flowgate's burnpack weights file and compares every tensor's
  name and shape with this model's (BatchNorm gamma/beta = torch weight/bias; burn stores
  Linear weights as [in, out], torch as [out, in]); prints both trainable parameter counts.
* `--parity-csv SCORES.csv` (with `--bpk`): loads flowgate's trained weights into this model
  and compares its log-likelihoods (eval mode, bin-centre dequantisation) with the ones
  `flowgate score --run RUN --input IDX --limit K` wrote, on the same images (`--parity-input`).

Output is line-oriented `key value` so that bench/train-throughput.sh can parse it.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import struct
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- masks

TOP_LEFT, TOP_RIGHT, BOTTOM_RIGHT, BOTTOM_LEFT = 0, 1, 2, 3  # the paper's quadrant index


def quadrant_contains(q: int, row: int, col: int, h: int, w: int) -> bool:
    top, left = row < h // 2, col < w // 2
    return {
        TOP_LEFT: top and left,
        TOP_RIGHT: top and not left,
        BOTTOM_RIGHT: (not top) and (not left),
        BOTTOM_LEFT: (not top) and left,
    }[q]


def spatial_role(mask: tuple, row: int, col: int, h: int, w: int):
    """True: read (kept, fed to the s/t net); False: changed; None: neither.

    `flowgate_shared::Mask::spatial_role`."""
    kind = mask[0]
    if kind == "checkerboard":
        return ((row + col) % 2 == 1) != mask[1]
    if kind == "horizontal":
        return (row < h // 2) != mask[1]
    if kind == "quadrant":
        _, read, write = mask
        if quadrant_contains(read, row, col, h, w):
            return True
        if quadrant_contains(write, row, col, h, w):
            return False
        return None
    raise ValueError(mask)


def spatial_mask(mask: tuple, h: int, w: int, role) -> torch.Tensor:
    values = [[1.0 if spatial_role(mask, r, c, h, w) == role else 0.0 for c in range(w)] for r in range(h)]
    return torch.tensor(values, dtype=torch.float32).view(1, 1, h, w)


# ----------------------------------------------------------------------------- s/t networks


def conv(cin: int, cout: int, kernel: int, zero: bool = False) -> nn.Conv2d:
    layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=True)
    if zero:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


class ResidualBlock(nn.Module):
    """BN, ReLU, conv3x3, BN, ReLU, conv3x3, plus the input (`st_net::ResidualBlock`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.in_norm = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
        self.in_conv = conv(channels, channels, 3)
        self.out_norm = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
        self.out_conv = conv(channels, channels, 3)

    def forward(self, x):
        h = self.in_conv(F.relu(self.in_norm(x)))
        return self.out_conv(F.relu(self.out_norm(h))) + x


class Bottleneck(nn.Module):
    def __init__(self, flat: int, latent: int):
        super().__init__()
        self.encode = nn.Linear(flat, latent)
        self.decode = nn.Linear(latent, flat)


class Autoencoder(nn.Module):
    """Two strided 3x3 convs (stride 2, pad 1) down, two transposed convs (k4 s2 p1) up."""

    def __init__(self, mid: int):
        super().__init__()
        self.down = nn.ModuleList([nn.Conv2d(mid, mid, 3, stride=2, padding=1) for _ in range(2)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(mid, mid, 4, stride=2, padding=1) for _ in range(2)])


class StNet(nn.Module):
    """`st_net::StNet`: the paper's ResNet (`resnet`), `resnet_ae` (with a bottleneck), or the
    convolutional `autoencoder`. Output `[B, 2C, H, W]`: s_raw channels first, then t."""

    def __init__(self, in_channels, mid, blocks, height, width, bottleneck, double_after_norm, autoencoder):
        super().__init__()
        self.double_after_norm = double_after_norm
        self.blocks_count = blocks
        self.in_norm = nn.BatchNorm2d(in_channels, eps=1e-5, momentum=0.1)
        self.in_conv = conv(2 * in_channels, mid, 3)
        self.autoencoder = Autoencoder(mid) if autoencoder else None
        self.blocks = nn.ModuleList([] if autoencoder else [ResidualBlock(mid) for _ in range(blocks)])
        self.skips = nn.ModuleList(
            [conv(mid, mid, 1) for _ in range(blocks + 1)] if bottleneck is None and not autoencoder else []
        )
        scale = 4 if autoencoder else 1
        self.bottleneck = (
            Bottleneck(mid * (height // scale) * (width // scale), bottleneck) if bottleneck is not None else None
        )
        self.out_norm = nn.BatchNorm2d(mid, eps=1e-5, momentum=0.1)
        self.out_conv = conv(mid, 2 * in_channels, 1, zero=True)
        self.bottleneck_after = max(blocks // 2, 1) - 1

    def forward(self, x):
        x = self.in_norm(x)
        if self.double_after_norm:
            x = x * 2.0
        x = F.relu(torch.cat([x, -x], dim=1))
        x = self.in_conv(x)
        if self.autoencoder is not None:
            for down in self.autoencoder.down:
                x = down(F.relu(x))
            b, c, h, w = x.shape
            code = self.bottleneck.encode(F.relu(x).reshape(b, c * h * w))
            x = self.bottleneck.decode(code).reshape(b, c, h, w)
            for up in self.autoencoder.up:
                x = up(F.relu(x))
            return self.out_conv(F.relu(self.out_norm(x)))
        skip = self.skips[0](x) if len(self.skips) else None
        for index, block in enumerate(self.blocks):
            x = block(x)
            if skip is not None and index + 1 < len(self.skips):
                skip = skip + self.skips[index + 1](x)
            if self.bottleneck is not None and index == self.bottleneck_after:
                b, c, h, w = x.shape
                x = self.bottleneck.decode(self.bottleneck.encode(x.reshape(b, c * h * w))).reshape(b, c, h, w)
        x = skip if skip is not None else x
        return self.out_conv(F.relu(self.out_norm(x)))


# ----------------------------------------------------------------------------- flow layers


class Coupling(nn.Module):
    """Affine coupling `y = (x + t) * exp(s)`, `s = scale * tanh(s_raw)`, log-det = sum s."""

    def __init__(self, mask: tuple, net: StNet, changed_channels: int, height: int, width: int):
        super().__init__()
        self.mask = mask
        self.net = net
        self.scale = nn.Parameter(torch.ones(changed_channels))
        if mask[0] != "channel":
            self.register_buffer("read", spatial_mask(mask, height, width, True), persistent=False)
            self.register_buffer("write", spatial_mask(mask, height, width, False), persistent=False)

    def forward(self, x):
        c = x.shape[1]
        if self.mask[0] == "channel":
            reverse = self.mask[1]
            half = c // 2
            first, second = x[:, :half], x[:, half:]
            x_id, x_change = (first, second) if reverse else (second, first)
            st = self.net(x_id)
            s_raw, t = st[:, :half], st[:, half:]
            s = self.scale.view(1, half, 1, 1) * torch.tanh(s_raw)
            y_change = (x_change + t) * torch.exp(s)
            y = torch.cat([x_id, y_change] if reverse else [y_change, x_id], dim=1)
            return y, s.sum(dim=(1, 2, 3))
        x_id = x * self.read
        st = self.net(x_id)
        s_raw, t = st[:, :c], st[:, c:]
        t = t * self.write
        s = self.scale.view(1, c, 1, 1) * torch.tanh(s_raw) * self.write
        y = (x + t) * torch.exp(s)
        return y, s.sum(dim=(1, 2, 3))


class ActNorm(nn.Module):
    """`y = (x + bias) * exp(log_scale)`, identity start (as flowgate; Glow inits from data)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        b, c, h, w = x.shape
        y = (x + self.bias.view(1, c, 1, 1)) * torch.exp(self.log_scale).view(1, c, 1, 1)
        return y, (self.log_scale.sum() * (h * w)).expand(b)


class InvConv1x1(nn.Module):
    """Glow's LU 1x1 conv: `W = P L (U + diag(sign * exp(log_s)))`, P = channel reversal."""

    def __init__(self, channels: int):
        super().__init__()
        self.lower = nn.Parameter(torch.zeros(channels, channels))
        self.upper = nn.Parameter(torch.zeros(channels, channels))
        self.log_s = nn.Parameter(torch.zeros(channels))
        self.register_buffer("perm", torch.eye(channels).flip(1), persistent=False)
        self.register_buffer("sign", torch.ones(channels), persistent=False)
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1), persistent=False)
        self.register_buffer("upper_mask", torch.triu(torch.ones(channels, channels), 1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)

    def weight(self):
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.upper_mask + torch.diag(self.sign * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x):
        b, c, h, w = x.shape
        y = F.conv2d(x, self.weight().view(c, c, 1, 1))
        return y, (self.log_s.sum() * (h * w)).expand(b)


def squeeze(x):
    """The paper's squeeze `[B, C, H, W] -> [B, 4C, H/2, W/2]`, output channel 4c + 2dy + dx."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


class Flow(nn.Module):
    """`flows::FlowModel` built by the same rules as its `Builder`."""

    def __init__(self, model_cfg: dict):
        super().__init__()
        self.alpha = float(model_cfg.get("alpha", 0.05))
        self.dims = model_cfg["channels"] * model_cfg["height"] * model_cfg["width"]
        arch = model_cfg["architecture"]
        st = model_cfg["st_net"]
        self.st_channels = st["channels"]
        self.st_blocks = st["blocks"]
        self.st_bottleneck = st.get("bottleneck")
        self.st_autoencoder = st.get("kind", "resnet") == "autoencoder"
        h, w = model_cfg["height"], model_cfg["width"]
        if self.st_autoencoder and (self.st_bottleneck is None or h % 4 or w % 4):
            raise ValueError("the autoencoder s/t network needs a bottleneck and height and width divisible by 4")
        if not self.st_autoencoder and self.st_bottleneck is not None and self.st_blocks == 0:
            raise ValueError("a bottleneck sits between residual blocks: blocks must be at least 1")
        self.couplings = nn.ModuleList()
        self.actnorms = nn.ModuleList()
        self.inv_convs = nn.ModuleList()
        self.steps: list[tuple] = []
        self.shape = (model_cfg["channels"], h, w)
        mid = st["channels"]
        kind = arch["kind"]
        if kind == "real_nvp":
            scales = arch["scales"]
            for scale in range(scales):
                for reverse in (False, True, False):
                    self._coupling(("checkerboard", reverse), mid)
                if scale + 1 == scales:
                    self._coupling(("checkerboard", True), mid)
                else:
                    self._squeeze()
                    if self.st_bottleneck is None:
                        mid *= 2
                    for reverse in (False, True, False):
                        self._coupling(("channel", reverse), mid)
                    self._factor_out()
        elif kind == "cycle_mask":
            for k in range(arch["couplings"]):
                self._coupling(("quadrant", k % 4, (k + 1) % 4), mid)
        elif kind == "horizontal":
            for k in range(arch["couplings"]):
                self._coupling(("horizontal", k % 2 == 1), mid)
        elif kind == "glow":
            # The rotation start's fixed permutation and signs come from flowgate's own
            # generator and nalgebra's QR and LU; they are not in the .bpk, and not rebuilt
            # here: this model starts from the reversal (the same cost per step, so fine for
            # the throughput bench) and refuses to load trained rotation weights.
            self.rotation_start = arch.get("conv_init", "reverse") != "reverse"
            scales = arch["scales"]
            for scale in range(scales):
                self._squeeze()
                for step in range(arch["steps"]):
                    c = self.shape[0]
                    self.steps.append(("actnorm", len(self.actnorms)))
                    self.actnorms.append(ActNorm(c))
                    self.steps.append(("invconv", len(self.inv_convs)))
                    self.inv_convs.append(InvConv1x1(c))
                    self._coupling(("channel", step % 2 == 1), mid)
                if scale + 1 < scales:
                    self._factor_out()
        else:
            raise ValueError(f"unknown architecture kind {kind!r}")

    def _coupling(self, mask, mid):
        c, h, w = self.shape
        in_channels = c // 2 if mask[0] == "channel" else c
        net = StNet(
            in_channels,
            mid,
            self.st_blocks,
            h,
            w,
            self.st_bottleneck,
            double_after_norm=mask[0] == "checkerboard",
            autoencoder=self.st_autoencoder,
        )
        self.steps.append(("coupling", len(self.couplings)))
        self.couplings.append(Coupling(mask, net, in_channels, h, w))

    def _squeeze(self):
        c, h, w = self.shape
        if h % 2 or w % 2:
            raise ValueError(f"squeeze needs even height and width, the activation is {c}x{h}x{w}")
        self.shape = (4 * c, h // 2, w // 2)
        self.steps.append(("squeeze",))

    def _factor_out(self):
        c, h, w = self.shape
        self.shape = (c // 2, h, w)
        self.steps.append(("factor_out", c // 2))

    def preprocess(self, levels, dequantize: bool):
        """`preprocess::levels_to_flow_input`: y = logit(alpha + (1 - 2 alpha) z), z = (level + u)/256."""
        u = torch.rand_like(levels) if dequantize else torch.full_like(levels, 0.5)
        z = (levels + u) / 256.0
        p = z * (1.0 - 2.0 * self.alpha) + self.alpha
        ln_p, ln_q = torch.log(p), torch.log(1.0 - p)
        y = ln_p - ln_q
        per_dim = -(ln_p + ln_q) + math.log(1.0 - 2.0 * self.alpha)
        log_det = per_dim.sum(dim=(1, 2, 3)) - self.dims * math.log(256.0)
        return y, log_det

    def log_likelihood(self, levels, dequantize: bool):
        x, total = self.preprocess(levels, dequantize)
        latent = []
        for step in self.steps:
            kind = step[0]
            if kind == "coupling":
                x, ld = self.couplings[step[1]](x)
                total = total + ld
            elif kind == "actnorm":
                x, ld = self.actnorms[step[1]](x)
                total = total + ld
            elif kind == "invconv":
                x, ld = self.inv_convs[step[1]](x)
                total = total + ld
            elif kind == "squeeze":
                x = squeeze(x)
            elif kind == "factor_out":
                keep = step[1]
                latent.append(x[:, keep:])
                x = x[:, :keep]
        latent.append(x)
        for z in latent:
            d = z[0].numel()
            total = total - 0.5 * z.square().sum(dim=(1, 2, 3)) - 0.5 * d * math.log(2.0 * math.pi)
        return total


# ----------------------------------------------------------------------------- data


def read_idx_images(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise ValueError(f"{path}: not an idx3 image file (magic {magic})")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, rows, cols)


def find_split(data_dir: Path, dataset: str, prefix: str) -> Path:
    folder = data_dir / dataset
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"no {prefix} images in {folder} (run scripts/fetch-data.sh)")


MASK64 = (1 << 64) - 1


def permutation(count: int, seed: int) -> np.ndarray:
    """Fisher-Yates driven by a SplitMix64 stream (flowgate's former `training::permutation`)."""
    state = seed & MASK64
    order = list(range(count))
    for i in range(count - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    return np.asarray(order, dtype=np.int64)


class Batches:
    """`training::batch_indices`, with each epoch's permutation computed once."""

    def __init__(self, seed: int, count: int, batch: int):
        self.seed, self.count, self.batch = seed, count, batch
        self.per_epoch = max(count // batch, 1)
        self.epoch, self.order = None, None

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self.order = permutation(self.count, self.seed ^ ((epoch * 0x9E3779B97F4A7C15) & MASK64))
        start = position * self.batch
        return np.take(self.order, np.arange(start, start + self.batch), mode="wrap")


# ----------------------------------------------------------------------------- burnpack (flowgate's weights)


def _cbor(buf: bytes, i: int):
    """A minimal CBOR decoder (definite lengths; what burnpack's metadata uses)."""
    head = buf[i]
    major, info = head >> 5, head & 31
    i += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if major == 7 and info in (25, 26, 27):
            fmt = {2: ">e", 4: ">f", 8: ">d"}[size]
            return struct.unpack(fmt, buf[i : i + size])[0], i + size
        arg = int.from_bytes(buf[i : i + size], "big")
        i += size
    else:
        raise ValueError(f"unsupported CBOR item 0x{head:02x}")
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major == 2:
        return bytes(buf[i : i + arg]), i + arg
    if major == 3:
        return buf[i : i + arg].decode(), i + arg
    if major == 4:
        out = []
        for _ in range(arg):
            v, i = _cbor(buf, i)
            out.append(v)
        return out, i
    if major == 5:
        out = {}
        for _ in range(arg):
            k, i = _cbor(buf, i)
            v, i = _cbor(buf, i)
            out[k] = v
        return out, i
    if major == 6:
        return _cbor(buf, i)
    if major == 7:
        return {20: False, 21: True, 22: None}.get(arg, arg), i
    raise ValueError(major)


def read_burnpack(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a burn 0.22 `.bpk` file: magic "NRUB", u16 version, u32 metadata length
    (little-endian), CBOR metadata, data section aligned to 256 bytes."""
    buf = path.read_bytes()
    if buf[:4] != b"NRUB":
        raise ValueError(f"{path}: not a burnpack file")
    (meta_len,) = struct.unpack("<I", buf[6:10])
    meta, _ = _cbor(buf, 10)
    start = -(-(10 + meta_len) // 256) * 256
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, spec in meta["tensors"].items():
        a, b = spec["data_offsets"]
        arr = np.frombuffer(buf[start + a : start + b], dtype=dtypes[spec["dtype"]])
        out[name] = arr.reshape(spec["shape"]).copy()
    return out


def burn_names(model: Flow) -> dict[str, tuple[str, tuple, bool]]:
    """torch state-dict name -> (burn name, burn shape, is a trainable parameter)."""
    params = dict(model.named_parameters())
    out = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        owner = model.get_submodule(name.rsplit(".", 1)[0])
        leaf = name.rsplit(".", 1)[1]
        burn, shape = name, tuple(tensor.shape)
        if isinstance(owner, nn.BatchNorm2d):
            burn = name.rsplit(".", 1)[0] + "." + {"weight": "gamma", "bias": "beta"}.get(leaf, leaf)
        elif isinstance(owner, nn.Linear) and leaf == "weight":
            shape = shape[::-1]
        out[name] = (burn, shape, name in params)
    return out


def compare_with_burnpack(model: Flow, bpk: dict[str, np.ndarray]) -> list[str]:
    problems = []
    mapping = burn_names(model)
    seen = set()
    for name, (burn, shape, _) in mapping.items():
        seen.add(burn)
        if burn not in bpk:
            problems.append(f"flowgate has no tensor {burn} (torch {name} {shape})")
        elif tuple(bpk[burn].shape) != shape:
            problems.append(f"{burn}: flowgate shape {tuple(bpk[burn].shape)}, torch {shape}")
    for burn in bpk:
        if burn not in seen:
            problems.append(f"torch has no tensor for flowgate's {burn} {tuple(bpk[burn].shape)}")
    return problems


def load_burnpack(model: Flow, bpk: dict[str, np.ndarray]):
    state = {}
    for name, (burn, _, _) in burn_names(model).items():
        value = torch.from_numpy(bpk[burn])
        owner = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(owner, nn.Linear) and name.endswith(".weight"):
            value = value.t().contiguous()
        state[name] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"loading flowgate weights: missing {missing}, unexpected {unexpected}")


def exported_parameter_count(model: Flow) -> int:
    """What `flowgate-edge inspect` should print for the exported `.fgm`: every BatchNorm folds
    into a per-channel affine (2 per channel, as gamma/beta), the LU factors of each 1x1 conv
    (2 C^2 + C trainable) become the plain C x C matrix W."""
    trainable = sum(p.numel() for p in model.parameters())
    return trainable - sum(c.lower.numel() + c.log_s.numel() for c in model.inv_convs)


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--steps", type=int, default=100, help="timed training steps (default 100)")
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the after-warm-up rate (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (default: cores)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("FLOWGATE_DATA_DIR", "data")))
    ap.add_argument("--bpk", type=Path, help="flowgate's model.bpk: compare tensor names/shapes and counts")
    ap.add_argument("--parity-csv", type=Path, help="`flowgate score` CSV of the --bpk run on --parity-input")
    ap.add_argument("--parity-input", type=Path, help="the idx file that CSV scored")
    ap.add_argument("--check-only", action="store_true", help="run the checks, do not train")
    ap.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda (default cpu)")
    args = ap.parse_args()

    torch.set_num_threads(max(1, args.threads))
    cfg = tomllib.loads(args.config.read_text())
    train = cfg["train"]
    seed = int(train.get("seed", 0))
    torch.manual_seed(seed)
    model = Flow(cfg["model"])
    trainable = sum(p.numel() for p in model.parameters())
    print(f"config {args.config}")
    print(f"torch {torch.__version__} threads {torch.get_num_threads()} device {args.device}")
    print(f"torch_params {trainable}")
    print(f"torch_expected_exported_params {exported_parameter_count(model)}")
    print(f"layers {len(model.steps)} couplings {len(model.couplings)}")

    status = 0
    if args.bpk:
        if getattr(model, "rotation_start", False):
            sys.exit("conv_init = \"rotation\": the permutation and signs are not in the .bpk "
                     "and not rebuilt here; compare a conv_init = \"reverse\" run")
        bpk = read_burnpack(args.bpk)
        problems = compare_with_burnpack(model, bpk)
        flowgate_trainable = sum(
            v.size for k, v in bpk.items() if not (k.endswith("running_mean") or k.endswith("running_var"))
        )
        print(f"flowgate_params {flowgate_trainable}")
        print(f"tensors_compared {len(bpk)}")
        if problems:
            status = 1
            for p in problems:
                print(f"MISMATCH {p}")
        else:
            print("tensor_layout_match yes")
        if args.parity_csv and not problems:
            load_burnpack(model, bpk)
            model.eval()
            import csv

            with open(args.parity_csv) as f:
                expected = np.array([float(r["log_likelihood"]) for r in csv.DictReader(f)])
            images = read_idx_images(args.parity_input)[: len(expected)]
            with torch.no_grad():
                got = model.log_likelihood(torch.from_numpy(images.astype(np.float32)), dequantize=False)
            got = got.double().numpy()
            diff = np.abs(got - expected)
            print(f"parity_images {len(expected)}")
            print(f"parity_max_abs_diff_nats {diff.max():.6g}")
            print(f"parity_max_rel_diff {(diff / np.abs(expected)).max():.3g}")
            print(f"parity_mean_ll_flowgate {expected.mean():.4f} torch {got.mean():.4f}")
            if (diff / np.abs(expected)).max() > 1e-4:
                status = 1
                print("PARITY FAILED")
    if args.check_only:
        return status

    # Training, as training::train.
    images = read_idx_images(find_split(args.data_dir, "fashion-mnist" if cfg["data"]["dataset"] == "fashion-mnist" else "mnist", "train"))
    validation = min(int(cfg["data"].get("validation", 5000)), len(images) // 2)
    end = len(images) - validation
    if cfg["data"].get("limit") is not None:
        end = min(int(cfg["data"]["limit"]), end)
    train_images = images[:end]
    batch = int(train["batch"])
    model.to(args.device)
    lr = float(train["lr"])
    decay = float(train.get("weight_decay") or 0.0)
    if train.get("optimizer", "adam") == "rmsprop":
        optim = torch.optim.RMSprop(model.parameters(), lr=lr, alpha=0.99, eps=1e-5, momentum=0.9, weight_decay=decay)
    else:
        optim = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-5, weight_decay=decay)
    clip = train.get("grad_clip")
    batches = Batches(seed, len(train_images), batch)
    model.train()
    dims = model.dims
    step_times = []
    recent = []
    started = time.perf_counter()
    for step in range(args.steps):
        t0 = time.perf_counter()
        levels = torch.from_numpy(train_images[batches.indices(step)].astype(np.float32)).to(args.device)
        torch.manual_seed(seed + 1 + step)
        loss = -model.log_likelihood(levels, dequantize=True).mean()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            print(f"the loss became {loss_value} at step {step}", file=sys.stderr)
            return 1
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        optim.step()
        recent.append(loss_value / (dims * math.log(2.0)))
        step_times.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    warm = min(args.warmup, max(len(step_times) - 1, 0))
    print(f"steps {args.steps} batch {batch}")
    print(f"bits_per_dim_last {np.mean(recent[-100:]):.3f}")
    print(f"first_step_s {step_times[0]:.3f}")
    print(f"images_per_s_all {args.steps * batch / total:.1f}")
    print(f"images_per_s_after_warmup {(len(step_times) - warm) * batch / sum(step_times[warm:]):.1f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
