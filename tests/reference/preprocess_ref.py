#!/usr/bin/python3
"""Golden values for src/image (tests/image/test_image.c), from PIL + numpy only.

Writes tests/data/image/: source images (JPEG/PNG of many kinds; some PNGs are written
by hand here because PIL cannot write 16-bit RGB, 2-bit grey, short palettes or Adam7),
and for each one
  NAME.dec.{npy,png}        Image.open(f).convert('RGB') as uint8 [h, w, 3]
  NAME.pad.S.{npy,png}      LLaVA-1.5 expand2square + CLIP resize, uint8 [S, S, 3]
  NAME.crop.S.{npy,png}     HF CLIPImageProcessor resize + centre crop, uint8 [S, S, 3]
  NAME.padf.S.npy / .cropf.S.npy   normalised float32 [3, S, S] (small S only)
Large arrays are stored as PNG written by PIL (lossless) to keep the fixtures small.
manifest.txt lists "FILE S" per source. Hostile files are made by the C test itself.

Preprocessing below restates, in numpy, what LLaVA-1.5 + transformers do:
  llava/mm_utils.py expand2square; CLIPImageProcessor(size={"shortest_edge": S},
  crop_size=S, resample=BICUBIC): transformers.image_transforms.resize (PIL resize,
  reducing_gap=None), get_resize_output_image_size (int(S * long / short)),
  center_crop (top = (h - S) // 2), rescale (float64 * (1/255) -> float32),
  normalize ((x - mean) / std in float32).
Run: /usr/bin/python3 tests/reference/preprocess_ref.py
"""
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import PIL
from gguf_py import write_gguf
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "image")
MEAN = [0.48145466, 0.4578275, 0.40821073]  # openai/clip-vit-large-patch14-336
STD = [0.26862954, 0.26130258, 0.27577711]
rng = np.random.default_rng(1234)
# Sources (all with S = 30) whose normalised float outputs are stored too.
FLOAT_REFS = {"j_base420.jpg", "j_cmyk.jpg", "j_ycck.jpg", "p_rgb.png",
              "h_pal4_short.png", "h_interlaced_rgba16.png"}


def scene(w, h, seed, noise=12.0):
    """A photo-like RGB test pattern: gradients, hard edges, texture and noise."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.zeros((h, w, 3))
    a[..., 0] = 255 * x / max(w - 1, 1)
    a[..., 1] = 255 * y / max(h - 1, 1)
    a[..., 2] = 128 + 100 * np.sin(x / 3.0 + y / 5.0)
    cx, cy, rad = r.uniform(0, w), r.uniform(0, h), r.uniform(2, max(3, min(w, h) / 2))
    disk = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
    a[disk] = r.integers(0, 256, 3)
    cell = max(4, min(w, h) // 12)
    a[(x.astype(int) // cell + y.astype(int) // cell) % 2 == 0] *= 0.8  # checker texture
    a += r.normal(0, noise, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


# ---- hand-written PNG encoder (for what PIL cannot write) ----------------------------

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-d int array (all channels of one row) -> bytes at this bit depth."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    out = bytearray((len(samples) + per - 1) // per)
    for i, v in enumerate(samples):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, arr, depth, ctype, plte=None, trns=None, interlace=False):
    """arr: [h, w, channels] integer samples."""
    h, w = arr.shape[:2]
    a = arr.reshape(h, w, -1)
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            for row in sub:
                raw += b"\x00" + pack_row(row.reshape(-1), depth)
    else:
        for row in a:
            raw += b"\x00" + pack_row(row.reshape(-1), depth)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---- reference preprocessing ---------------------------------------------------------

def expand2square(img, bg):
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    res = Image.new(img.mode, (side, side), bg)
    res.paste(img, ((side - w) // 2, (side - h) // 2))
    return res


def clip_resize(img, S):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(S * long / short)
    size = (S, new_long) if w <= h else (new_long, S)
    if img.size == size:
        return img.copy()
    return img.resize(size, Image.BICUBIC, reducing_gap=None)


def center_crop(a, S):
    h, w = a.shape[:2]
    top, left = (h - S) // 2, (w - S) // 2
    assert top >= 0 and left >= 0
    return a[top:top + S, left:left + S]


def prepare(img, mode, S):
    if mode == "pad":
        img = expand2square(img, tuple(int(x * 255) for x in MEAN))
    return center_crop(np.asarray(clip_resize(img, S)), S)


def normalize(u8):
    x = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def store(base, arr):
    """uint8 image arrays > 48 kB go to PNG (written by PIL), others to .npy."""
    if arr.dtype == np.uint8 and arr.nbytes > 48 * 1024:
        Image.fromarray(arr, "RGB").save(base + ".png", optimize=True)
    else:
        np.save(base + ".npy", arr)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    cases = []  # (file name, S)

    def jpeg(name, w, h, S, mode="RGB", noise=12.0, **kw):
        img = Image.fromarray(scene(w, h, len(cases), noise), "RGB")
        if mode == "L":
            img = img.convert("L")
        elif mode == "CMYK":
            img = img.convert("CMYK")
        img.save(os.path.join(OUT, name), "JPEG", **kw)
        cases.append((name, S))

    def pil_png(name, img, S, **kw):
        img.save(os.path.join(OUT, name), "PNG", **kw)
        cases.append((name, S))

    def raw_png(name, arr, depth, ctype, S, **kw):
        write_png(os.path.join(OUT, name), arr, depth, ctype, **kw)
        cases.append((name, S))

    # JPEG: baseline 4:2:0 (odd sizes exercise the chroma edge upsampling), 4:4:4,
    # 4:2:2, progressive, greyscale, CMYK (Adobe, inverted), restart intervals.
    jpeg("j_base420.jpg", 61, 45, 30, quality=90)
    jpeg("j_444.jpg", 40, 52, 42, quality=95, subsampling=0)
    jpeg("j_422.jpg", 33, 21, 30, quality=80, subsampling=1)
    jpeg("j_prog.jpg", 77, 50, 42, quality=85, progressive=True)
    jpeg("j_grey.jpg", 50, 64, 30, mode="L", quality=90)
    jpeg("j_cmyk.jpg", 37, 29, 30, mode="CMYK", quality=90)
    jpeg("j_wide.jpg", 300, 9, 30, quality=90)
    jpeg("j_tall.jpg", 7, 220, 42, quality=90)
    jpeg("j_tiny.jpg", 1, 1, 30, quality=90)
    jpeg("j_big.jpg", 380, 280, 336, noise=1.5, quality=75)           # downscale to 336
    jpeg("j_prog_up.jpg", 120, 90, 336, noise=1.5, quality=80, progressive=True)  # upscale to 336
    # Corrupt entropy-coded data and stray bytes before EOI: libjpeg warns, PIL decodes
    # anyway (it silences warnings), so vlmn must produce the same pixels.
    d = bytearray(open(os.path.join(OUT, "j_base420.jpg"), "rb").read())
    sos = d.index(b"\xff\xda")
    for off in range(sos + 40, len(d) - 20, 97):
        if d[off] != 0xFF and d[off - 1] != 0xFF:
            d[off] = (d[off] ^ 0x5A) if (d[off] ^ 0x5A) != 0xFF else 0x00
    d[-2:-2] = b"\x00\x11\x22"
    with open(os.path.join(OUT, "j_corrupt.jpg"), "wb") as f:
        f.write(bytes(d))
    Image.open(os.path.join(OUT, "j_corrupt.jpg")).convert("RGB")  # PIL must accept it
    cases.append(("j_corrupt.jpg", 30))
    # 4-component JPEGs PIL cannot write (YCCK; CMYK without Adobe marker), made with
    # libjpeg through tests/reference/jpeg_cmyk_writer.c.
    with tempfile.TemporaryDirectory() as td:
        exe = os.path.join(td, "w")
        subprocess.run(["cc", "-O1", "-o", exe, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "jpeg_cmyk_writer.c"), "-ljpeg"], check=True)
        for name, w, h, kind, seed in (("j_ycck.jpg", 43, 31, "ycck", 110), ("j_cmyk_noadobe.jpg", 26, 35, "plain", 111)):
            cmyk = np.asarray(Image.fromarray(scene(w, h, seed), "RGB").convert("CMYK"))
            cmyk = cmyk.copy()
            cmyk[..., 3] = np.random.default_rng(seed).integers(0, 90, (h, w))  # some black
            subprocess.run([exe, str(w), str(h), kind, os.path.join(OUT, name)], input=cmyk.tobytes(), check=True)
            cases.append((name, 30))
    # PNG written by PIL.
    s = scene(53, 41, 100)
    pil_png("p_rgb.png", Image.fromarray(s, "RGB"), 30)
    rgba = np.dstack([scene(45, 58, 101), rng.integers(0, 256, (58, 45), dtype=np.uint8)])
    pil_png("p_rgba.png", Image.fromarray(rgba, "RGBA"), 42)
    pil_png("p_grey.png", Image.fromarray(scene(31, 70, 102)).convert("L"), 30)
    pil_png("p_la.png", Image.fromarray(scene(29, 23, 103)).convert("LA"), 42)
    pil_png("p_pal.png", Image.fromarray(scene(64, 48, 104)).convert("P", palette=Image.ADAPTIVE, colors=200), 30)
    pil_png("p_pal_trns.png", Image.fromarray(scene(20, 27, 105)).convert("P", palette=Image.ADAPTIVE, colors=16), 30,
            transparency=3)
    pil_png("p_bw.png", Image.fromarray(scene(35, 35, 106)).convert("1"), 30)
    g16 = (np.arange(24 * 19).reshape(19, 24) * 137 % 65536).astype(np.uint16)
    g16[0, :10] = [0, 1, 100, 254, 255, 256, 1000, 65535, 300, 7]
    pil_png("p_grey16.png", Image.fromarray(g16, "I;16"), 30)
    pil_png("p_big.png", Image.fromarray(scene(96, 360, 107, 1.0), "RGB"), 336)  # tall, up+down
    # PNG written by hand.
    raw_png("h_rgb16.png", rng.integers(0, 65536, (17, 26, 3)), 16, 2, 30)
    raw_png("h_rgba16.png", rng.integers(0, 65536, (15, 12, 4)), 16, 6, 42)
    raw_png("h_la16.png", rng.integers(0, 65536, (9, 14, 2)), 16, 4, 30)
    raw_png("h_grey2.png", rng.integers(0, 4, (13, 11, 1)), 2, 0, 30)
    raw_png("h_grey4_trns.png", rng.integers(0, 16, (10, 21, 1)), 4, 0, 30, trns=b"\x00\x05")
    raw_png("h_pal4_short.png", rng.integers(0, 16, (12, 19, 1)), 4, 3, 30,
            plte=rng.integers(0, 256, (10, 3)))  # indices 10..15 have no PLTE entry
    raw_png("h_pal1.png", rng.integers(0, 2, (9, 30, 1)), 1, 3, 30, plte=[[10, 200, 30], [250, 5, 128]])
    raw_png("h_interlaced.png", scene(37, 26, 108), 8, 2, 42, interlace=True)
    raw_png("h_interlaced_rgba16.png", rng.integers(0, 65536, (11, 13, 4)), 16, 6, 30, interlace=True)
    raw_png("h_1x1.png", np.array([[[7, 77, 177]]]), 8, 2, 42)
    raw_png("h_rgb_trns.png", scene(18, 18, 109), 8, 2, 30, trns=struct.pack(">HHH", 1, 2, 3))

    with open(os.path.join(OUT, "manifest.txt"), "w") as man:
        man.write("# FILE S  (made by tests/reference/preprocess_ref.py, Pillow %s, numpy %s)\n"
                  % (PIL.__version__, np.__version__))
        for name, S in cases:
            stem = os.path.join(OUT, name.rsplit(".", 1)[0])
            img = Image.open(os.path.join(OUT, name)).convert("RGB")
            store(stem + ".dec", np.asarray(img))
            for mode in ("pad", "crop"):
                u8 = prepare(img, mode, S)
                assert u8.shape == (S, S, 3), (name, mode, u8.shape)
                store("%s.%s.%d" % (stem, mode, S), np.ascontiguousarray(u8))
                if name in FLOAT_REFS:  # floats follow from uint8; a sample suffices
                    np.save("%s.%sf.%d.npy" % (stem, mode, S), normalize(u8))
            man.write("%s %d\n" % (name, S))
    # Mini "mmproj" files (metadata only) for the `vlmn preprocess` CLI test.
    base = {"general.architecture": "clip", "clip.vision.image_size": 30,
            "clip.vision.image_mean": MEAN, "clip.vision.image_std": STD}
    write_gguf(os.path.join(OUT, "mmproj_s30.gguf"), base, [])
    write_gguf(os.path.join(OUT, "mmproj_nomean.gguf"),
               {k: v for k, v in base.items() if k != "clip.vision.image_mean"}, [])
    write_gguf(os.path.join(OUT, "mmproj_badstd.gguf"), dict(base, **{"clip.vision.image_std": [0.5, 0.5]}), [])
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("Pillow", PIL.__version__, "numpy", np.__version__, "-", len(cases), "images,", total, "bytes in", OUT)


if __name__ == "__main__":
    main()
