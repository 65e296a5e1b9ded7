"""Rate–distortion requantisation: the encoder's quantiser, done in pixels.

libjpeg rounds every DCT coefficient c/Q to the nearest integer. Under an
entropy coder that is not the best trade, and libjpeg cannot be told to do
better. But it does not need to be: we quantise the image ourselves — the
encoder's own colour transform, 2×2 chroma averaging (4:2:0 files) and 8×8
DCT, with the file's tables — and hand libjpeg the image those coefficients decode to.
Re-quantising that image with the same tables gives back the same
coefficients (up to 8-bit rounding noise), so our choices land in an ordinary
baseline JPEG. Two choices are made:

- dead zone: |c/Q| is rounded down unless its fraction exceeds `deadzone`
  (½ is libjpeg's rounding; video coders use about ⅔ for intra blocks);
- end-of-block placement: the zig-zag tail of a block is zeroed where the bits
  it costs (Huffman code + magnitude bits, estimated with the Annex K luma
  code lengths) buy less than λ·bits of squared error, λ = `eob`·Q̄², Q̄ the
  mean of the table's nine lowest-frequency steps (a crude trellis).

A third, for 4:2:0 files, is which half-resolution chroma to store. libjpeg
averages each 2×2 block, but most decoders (libjpeg-turbo's default, so Pillow
and the browsers) upsample with the "fancy" triangle filter (¾ the nearest
sample, ¼ the next), so the averages come back blurred. With `sharp` = 1 the
stored chroma is instead the least-squares solution for that upsampler (as
libwebp's "sharp YUV" does for its own); 0 keeps the averages, values between
blend the two. Decoders that repeat each sample instead see such chroma worse
than the averages, which is why the shipped share is 0 (README, "not shipped").

The numbers are chosen on val/ (training/requant_sweep.py) and stored in the
weights manifest. Arrays are uint8 (H, W, 3) RGB or (H, W) grey; tables
(2, 8, 8) luma, chroma. Work is done in bands of BAND rows, so memory stays
bounded on huge images, and the bands of an image are shared among
runtime.workers() threads (numpy releases the GIL in its array loops), each
with a single-threaded BLAS (runtime.one_blas_thread).
"""
from __future__ import annotations

import numpy as np

from .runtime import one_blas_thread, pool

BAND = 256  # rows per band: a multiple of 16 (one 4:2:0 MCU row)
SHARP_TAPS = 7  # terms of the fancy upsampler's inverse filter kept: the last weighs (2/3)·3⁻⁶ ≈ 1e-3
CONTEXT = 16  # rows read above and below a band for that filter: ≥ 2·SHARP_TAPS − 1, a multiple of 16

# JFIF RGB → YCbCr (centred: Cb, Cr without their +128 offset), as libjpeg converts.
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]], dtype=np.float32)
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC).astype(np.float32)


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II D (float32): coefficients = D · block · Dᵀ, JPEG's own scaling."""
    k, n = np.arange(8)[:, None], np.arange(8)[None]
    d = np.sqrt(2 / 8) * np.cos(np.pi * (2 * n + 1) * k / 16)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


DCT = dct_matrix()
DCT2 = np.kron(DCT, DCT)  # (64, 64): a row-major flattened block b ↦ D·b·Dᵀ, flattened; one GEMM for all blocks

# Zig-zag scan: ZIGZAG[i] is the natural-order index of the i-th coefficient sent.
ZIGZAG = np.array(sorted(range(64), key=lambda i: (i // 8 + i % 8, (i // 8) if (i // 8 + i % 8) % 2 else (i % 8))))


def annex_k_ac_lengths() -> np.ndarray:
    """Code length in bits of each AC symbol (run << 4 | size) in the Annex K.5
    luminance table; the symbols not listed among its short codes take 16 bits."""
    counts = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1]  # how many codes of length 1..15 (Annex K BITS)
    short = [0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
             0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
             0x24, 0x33, 0x62, 0x72, 0x82]
    lengths = np.full(256, 16.0)
    lengths[short] = np.repeat(np.arange(1, 16), counts)
    return lengths


AC_BITS = annex_k_ac_lengths()


def symbol_bits(levels: np.ndarray) -> np.ndarray:
    """Estimated bits of each non-zero AC level, zig-zag-major (64, n): its
    Huffman code for (zero run, size) — with a ZRL code per 16 zeros — plus its
    `size` magnitude bits. Zeros and the DC entry cost 0 here."""
    pos = np.arange(64, dtype=np.int32)[:, None]
    nonzero = levels != 0
    nonzero[0] = False
    marks = np.where(nonzero, pos, 0)  # DC counts as the start of the first run
    previous = np.zeros_like(marks)
    np.maximum.accumulate(marks[:-1], axis=0, out=previous[1:])
    run = pos - previous - 1
    size = np.frexp(np.abs(levels))[1]  # bit length of |level| (0 for 0)
    bits = (run >> 4) * AC_BITS[0xf0] + AC_BITS[((run & 15) << 4) | np.minimum(size, 10)] + size
    return np.where(nonzero, bits, 0).astype(np.float32)


# Annex K.3 DC code lengths per size category 0..11 (luminance, chrominance).
DC_BITS = (np.array([2, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 9], np.float32),
           np.array([2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], np.float32))
EOB_BITS = 4.0  # Annex K luminance code length of the end-of-block symbol (0x00)


def annex_k_bits(levels: np.ndarray, chroma: bool) -> tuple[float, float]:
    """Estimated (AC bits, DC bits) of one plane's integer levels (blocks, 64),
    natural order, blocks in coding order: AC symbols by symbol_bits plus an
    end-of-block code per block with any AC, DC differences by the Annex K DC
    code plus their magnitude bits (chroma: the chrominance DC code). The
    FakeCodec's rate model weighs them (an optimised Huffman code is shorter)."""
    k = np.asarray(levels, np.int32)
    ac = float(symbol_bits(k[:, ZIGZAG].T).sum()) + EOB_BITS * float(np.any(k[:, 1:] != 0, 1).sum())
    size = np.frexp(np.abs(np.diff(k[:, 0], prepend=0)))[1]
    dc = float((DC_BITS[int(chroma)][np.minimum(size, 11)] + size).sum())
    return ac, dc


def suffix_sum(a: np.ndarray) -> np.ndarray:
    """s[p] = a[p:].sum(0) along the first axis."""
    return a.sum(0, keepdims=True) - np.cumsum(a, 0) + a


def place_eob(c: np.ndarray, levels: np.ndarray, q: np.ndarray, lam: float) -> np.ndarray:
    """Zero the zig-zag tail of each block where λ·bits saved > squared error added.
    c: scaled coefficients c/Q (n, 64) natural order; levels: their integers; q: steps (64,)."""
    busy = np.flatnonzero(np.any(levels[:, 1:] != 0, 1))  # blocks with nothing after DC have nothing to cut
    cz, kz = c[busy][:, ZIGZAG].T, levels[busy][:, ZIGZAG].T  # (64, m): scan position first, for fast sums
    added = np.where(kz != 0, (cz ** 2 - (cz - kz) ** 2) * (q[ZIGZAG] ** 2)[:, None], 0)  # error added by zeroing each
    gain = lam * suffix_sum(symbol_bits(kz)) - suffix_sum(added)  # cutting the tail from p on
    gain[0] = -np.inf
    gain[kz == 0] = -np.inf  # cut points are non-zero coefficients
    cut = gain.argmax(0)
    cut[gain[cut, np.arange(len(busy))] <= 0] = 64  # nothing worth cutting
    kz = np.where(np.arange(64)[:, None] >= cut[None], 0, kz)
    out = levels.copy()
    out[busy[:, None], ZIGZAG[None]] = kz.T
    return out


def quantise_levels(c: np.ndarray, table: np.ndarray, deadzone: float, eob: float) -> np.ndarray:
    """The encoder's integer levels of scaled coefficients c = DCT/Q, (n, 64) in
    natural order, for the 8×8 `table`: dead-zone rounding of AC, DC rounded as
    libjpeg does, then end-of-block placement. (The FakeCodec uses this too.)"""
    k = np.sign(c) * np.floor(np.abs(c) + (1 - max(deadzone, 0.5)))
    k[:, 0] = np.round(c[:, 0])
    if eob > 0:
        q = np.asarray(table, np.float32).reshape(64)
        k = place_eob(c, k, q, eob * float(np.mean(np.asarray(table)[:3, :3])) ** 2)
    return k


def quantise_plane(plane: np.ndarray, table: np.ndarray, deadzone: float, eob: float) -> np.ndarray:
    """A centred plane (h, w), multiples of 8, as the decode of its requantised coefficients."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    q = table.astype(np.float32).reshape(64)
    k = quantise_levels(blocks @ DCT2.T / q, table, deadzone, eob)
    rec = (k * q) @ DCT2
    return rec.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def fancy_inverse(plane: np.ndarray, axis: int) -> np.ndarray:
    """float32 plane, even length along `axis` → half that length: the samples
    whose libjpeg "fancy" upsampling (output 2i is ¾·s[i] + ¼·s[i−1], 2i+1 is
    ¾·s[i] + ¼·s[i+1], edges repeated) comes closest to `plane` in least squares.
    That upsampler's pseudo-inverse is the filter s[i] = Σₖ (2/3)(−1/3)ᵏ·(p[2i−2k]
    + p[2i+1+2k]); symmetric extension past the ends makes it exact there too
    (within 1 % of the signal's step, against numpy's pinv)."""
    p = np.moveaxis(plane, axis, 0)
    m, r = p.shape[0], 2 * SHARP_TAPS
    p = np.pad(p, [(r, r)] + [(0, 0)] * (p.ndim - 1), mode="symmetric")
    out = np.zeros((m // 2,) + p.shape[1:], np.float32)
    term = np.empty_like(out)
    for k in range(SHARP_TAPS):  # in place: temporaries cost more than the arithmetic here
        np.add(p[r - 2 * k:r - 2 * k + m:2], p[r + 1 + 2 * k:r + 1 + 2 * k + m:2], out=term)
        term *= np.float32(2 / 3 * (-1 / 3) ** k)
        out += term
    return np.moveaxis(out, 0, axis)


def requantise_band(band: np.ndarray, tables: np.ndarray, deadzone: float, eob: float,
                    subsampling: str = "4:2:0", sharp: float = 0.0, context: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One band (top + h + bottom, w, 3) float32, h and w multiples of 16, with
    `context` = (top, bottom) rows around it that are read (by the sharp chroma
    filter) but not returned → RGB float32 (h, w, 3) whose JPEG coefficients at
    `subsampling` ("4:2:0" or "4:4:4") are the requantised ones."""
    top, bottom = context
    ycc_all = band @ RGB_TO_YCC.T
    ycc = ycc_all[top:len(band) - bottom]
    h, w = ycc.shape[:2]
    ycc[..., 0] = quantise_plane(ycc[..., 0] - 128, tables[0], deadzone, eob) + 128
    for i in (1, 2):
        full = ycc[..., i]
        if subsampling == "4:4:4":
            ycc[..., i] = quantise_plane(full, tables[1], deadzone, eob)
            continue
        half = full.reshape(h // 2, 2, w // 2, 2).mean((1, 3))  # what the encoder's 2×2 averaging sees
        target = half
        if sharp > 0:
            lsq = fancy_inverse(fancy_inverse(ycc_all[..., i], 0), 1)[top // 2:top // 2 + h // 2]
            target = half + np.float32(sharp) * (lsq - half)
        shift = quantise_plane(target, tables[1], deadzone, eob) - half
        ycc[..., i] = full + np.repeat(np.repeat(shift, 2, 0), 2, 1)  # moves each 2×2 mean by exactly `shift`
    return ycc @ YCC_TO_RGB.T


def requantise(arr: np.ndarray, tables: np.ndarray, deadzone: float = 0.5, eob: float = 0.0,
               subsampling: str = "4:2:0", sharp: float = 0.0) -> np.ndarray:
    """uint8 image (H, W, 3) or (H, W) → the same shape, simplified so that
    libjpeg with `tables` (colour at `subsampling`, "4:2:0" or "4:4:4") codes it with these choices.
    deadzone ≤ 0.5, eob = 0 and sharp = 0 (libjpeg's own quantiser) return the input itself."""
    sharp = sharp if subsampling == "4:2:0" and arr.ndim == 3 else 0.0
    if deadzone <= 0.5 and eob <= 0 and sharp <= 0:
        return arr
    tables = np.asarray(tables)
    grey = arr.ndim == 2
    h, w = arr.shape[:2]
    pad = ((0, -h % 16), (0, -w % 16)) + (() if grey else ((0, 0),))
    src = np.pad(arr, pad, mode="edge")  # libjpeg also repeats the last row and column into partial blocks
    out = np.empty_like(arr)

    def one_band(r: int) -> None:
        if grey:
            rec = quantise_plane(src[r:r + BAND].astype(np.float32) - 128, tables[0], deadzone, eob) + 128
        else:
            reach = CONTEXT if sharp > 0 else 0
            lo, hi = max(r - reach, 0), min(r + BAND + reach, len(src))
            rec = requantise_band(src[lo:hi].astype(np.float32), tables, deadzone, eob, subsampling, sharp,
                                  (r - lo, hi - min(r + BAND, len(src))))
        rows = min(BAND, h - r)
        out[r:r + rows] = np.clip(np.rint(rec[:rows, :w]), 0, 255).astype(np.uint8)

    with one_blas_thread():
        list(pool().map(one_band, range(0, h, BAND)))  # bands are independent; each writes its own rows
    return out

