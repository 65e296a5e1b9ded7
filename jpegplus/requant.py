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


def symbol_bit_table() -> np.ndarray:
    """(64, 16) float32: estimated bits of a non-zero AC level after a zero run
    of r (0..63) with magnitude category s (bit length of |level|, 1..15): a
    ZRL code per 16 zeros, the Annex K code of (r mod 16, s), and s magnitude bits."""
    run, size = np.meshgrid(np.arange(64), np.arange(16), indexing="ij")
    return ((run >> 4) * AC_BITS[0xf0] + AC_BITS[((run & 15) << 4) | np.minimum(size, 10)] + size).astype(np.float32)


SYMBOL_BITS = symbol_bit_table()
SYMBOL_BITS_FLAT = SYMBOL_BITS.ravel()  # indexed by run · 16 + size
SCAN = np.arange(64, dtype=np.int32)[:, None]  # scan position of each row of a zig-zag-major (64, n) array
SCAN8 = SCAN.astype(np.int8)
BUSY_GATHER = 0.4  # place_eob gathers the blocks with AC levels only where they are fewer than this share (measured break-even ≈ 0.45)

# How these loops are written, measured on Kodak planes (one thread): numpy's cumsum, maximum.accumulate and
# argmax along axis 0 of a (64, n) array are about 30× slower than 64 row operations; np.where broadcasting a
# (64, 1) column is 30× slower than a multiply by the mask; and fresh (64, n) temporaries cost more than the
# arithmetic, so the work is done in place where it can be.


def symbol_bits(levels: np.ndarray) -> np.ndarray:
    """Estimated bits of each non-zero AC level, zig-zag-major (64, n): its
    Huffman code for (zero run, size) — with a ZRL code per 16 zeros — plus its
    `size` magnitude bits (SYMBOL_BITS). Zeros and the DC entry cost 0 here."""
    levels = np.ascontiguousarray(levels)
    nonzero = levels != 0
    nonzero[0] = False
    marks = nonzero.view(np.int8) * SCAN8  # DC counts as the start of the first run
    previous = np.empty_like(marks)  # the last non-zero position before each: a row loop, as in suffix_sum
    previous[0] = 0
    for p in range(1, len(marks)):
        np.maximum(previous[p - 1], marks[p - 1], out=previous[p])
    at = np.flatnonzero(nonzero)  # the rest only where a symbol is sent
    symbol = (at // levels.shape[1]).astype(np.int32)  # its scan position,
    symbol -= previous.ravel()[at]
    symbol -= 1  # → its zero run,
    symbol *= 16
    symbol += np.minimum(np.frexp(levels.ravel()[at])[1], 15)  # → run · 16 + bit length of |level|
    bits = np.zeros(levels.shape, np.float32)
    bits.ravel()[at] = SYMBOL_BITS_FLAT.take(symbol)
    return bits


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
    """In place: a[p] becomes a[p:].sum(0) along the first axis of (64, n); returns a."""
    for p in range(len(a) - 2, -1, -1):
        a[p] += a[p + 1]
    return a


def place_eob(c: np.ndarray, levels: np.ndarray, q: np.ndarray, lam: float) -> np.ndarray:
    """Zero the zig-zag tail of each block where λ·bits saved > squared error added.
    All zig-zag-major: c scaled coefficients c/Q (64, n); levels their integers
    (changed in place and returned); q the steps (64,) in scan order."""
    busy = np.flatnonzero(np.any(levels[1:] != 0, 0))  # blocks with nothing after DC have nothing to cut
    gather = len(busy) < BUSY_GATHER * levels.shape[1]
    cz, kz = (c[:, busy], levels[:, busy]) if gather else (c, levels)
    added = np.multiply(cz, 2)  # (2c − k)·k·Q² = c² − (c − k)², in units of Q²: the error added by zeroing each
    added -= kz
    added *= kz
    added *= (q ** 2)[:, None]
    gain = symbol_bits(kz)
    gain *= np.float32(lam)
    gain -= added
    suffix_sum(gain)  # of cutting the tail from p on
    best = np.zeros(kz.shape[1], np.float32)  # the first cut point (a non-zero AC level) of the largest gain > 0,
    cut = np.full(kz.shape[1], 64, np.int32)  # else 64: nothing worth cutting (so every block without AC)
    for p in range(1, len(kz)):  # a row loop, as in suffix_sum: argmax along axis 0 is slow too
        better = gain[p] > best
        better &= kz[p] != 0
        np.copyto(best, gain[p], where=better)
        cut[better] = p
    np.copyto(kz, 0, where=SCAN >= cut)
    if gather:
        levels[:, busy] = kz  # kz is a copy there
    return levels


def scan_levels(c: np.ndarray, table: np.ndarray, deadzone: float, eob: float) -> np.ndarray:
    """The encoder's integer levels of scaled coefficients c = DCT/Q, zig-zag-major
    (64, n), for the 8×8 `table` (natural order): dead-zone rounding of AC, DC
    rounded as libjpeg does, then end-of-block placement."""
    k = np.copysign(np.float32(1 - max(deadzone, 0.5)), c)
    k += c
    np.trunc(k, out=k)  # sign(c)·⌊|c| + 1 − deadzone⌋
    k[0] = np.round(c[0])
    if eob > 0:
        table = np.asarray(table, np.float32)
        k = place_eob(c, k, table.reshape(64)[ZIGZAG], eob * float(np.mean(table[:3, :3])) ** 2)
    return k


def quantise_levels(c: np.ndarray, table: np.ndarray, deadzone: float, eob: float) -> np.ndarray:
    """scan_levels for c (n, 64) in natural order, the levels in natural order too (the FakeCodec uses this)."""
    out = np.empty_like(c)
    out[:, ZIGZAG] = scan_levels(np.ascontiguousarray(c[:, ZIGZAG].T), table, deadzone, eob).T
    return out


DCT2_SCAN = DCT2[ZIGZAG]  # (64, 64): a row-major flattened block ↦ its coefficients in zig-zag order


def quantise_plane(plane: np.ndarray, table: np.ndarray, deadzone: float, eob: float) -> np.ndarray:
    """A centred plane (h, w), multiples of 8, as the decode of its requantised coefficients."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(1, 3, 0, 2).reshape(64, -1)  # one block per column
    q = np.asarray(table, np.float32).reshape(64)[ZIGZAG, None]
    c = DCT2_SCAN @ blocks
    c /= q
    k = scan_levels(c, table, deadzone, eob)
    k *= q
    return (DCT2_SCAN.T @ k).reshape(8, 8, h // 8, w // 8).transpose(2, 0, 3, 1).reshape(h, w)


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
    rows, w = band.shape[:2]
    planes = (RGB_TO_YCC @ band.reshape(-1, 3).T).reshape(3, rows, w)  # Y, Cb, Cr planes, each contiguous
    ycc = planes[:, top:rows - bottom]
    ycc[0] = quantise_plane(ycc[0] - 128, tables[0], deadzone, eob) + 128
    for i in (1, 2):
        full = ycc[i]
        if subsampling == "4:4:4":
            ycc[i] = quantise_plane(full, tables[1], deadzone, eob)
            continue
        cells = (full[0::2, 0::2], full[0::2, 1::2], full[1::2, 0::2], full[1::2, 1::2])
        half = (cells[0] + cells[1] + cells[2] + cells[3]) * np.float32(0.25)  # the encoder's 2×2 averaging
        target = half
        if sharp > 0:
            lsq = fancy_inverse(fancy_inverse(planes[i], 0), 1)[top // 2:top // 2 + len(half)]
            target = half + np.float32(sharp) * (lsq - half)
        shift = quantise_plane(target, tables[1], deadzone, eob) - half
        for cell in cells:  # moves each 2×2 mean by exactly `shift`
            cell += shift
    return (YCC_TO_RGB @ ycc.reshape(3, -1)).T.reshape(ycc.shape[1], w, 3)


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

