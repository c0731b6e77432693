"""Independent GGUF reader/writer in plain Python + NumPy, written from the GGUF spec
(not from vlmn's C code). Used by the reference scripts under tests/reference/ to
write fixtures and to read the same files vlmn reads. Supports metadata of every
type and tensors in F32, F16, BF16 and Q8_0 (quantised here with the ggml rule:
d = max|x| / 127, q = round(x / d))."""
import struct
import numpy as np

GGUF_MAGIC = b"GGUF"
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
TYPE_NAMES = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q8_0: "Q8_0", GGML_BF16: "BF16"}


class Val:
    """A metadata value with an explicit GGUF type (for arrays: elem type)."""
    def __init__(self, vtype, value, elem_type=None):
        self.vtype, self.value, self.elem_type = vtype, value, elem_type


def _infer(v):
    if isinstance(v, Val):
        return v
    if isinstance(v, bool):
        return Val(T_BOOL, v)
    if isinstance(v, int):
        return Val(T_U32 if 0 <= v < 2**32 else T_I64, v)
    if isinstance(v, float):
        return Val(T_F32, v)
    if isinstance(v, str):
        return Val(T_STR, v)
    if isinstance(v, (list, tuple)):
        if not v:
            return Val(T_ARR, [], T_U32)
        first = _infer(v[0])
        return Val(T_ARR, list(v), first.vtype)
    raise TypeError(f"cannot infer GGUF type of {v!r}")


def _pack_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _pack_val(vtype, v, elem_type=None):
    if vtype == T_STR:
        return _pack_str(v)
    if vtype == T_ARR:
        out = [struct.pack("<IQ", elem_type, len(v))]
        for e in v:
            if elem_type == T_ARR:
                ev = _infer(e)
                out.append(_pack_val(T_ARR, ev.value, ev.elem_type))
            else:
                out.append(_pack_val(elem_type, e.value if isinstance(e, Val) else e))
        return b"".join(out)
    return struct.pack(_SCALAR[vtype], v)


def bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even (as torch/ggml do for finite x)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def quantize_q8_0(x):
    x = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0)
    q = np.round(x * inv[:, None]).astype(np.int8)
    d16 = d.astype(np.float16)
    out = bytearray()
    for i in range(x.shape[0]):
        out += d16[i].tobytes() + q[i].tobytes()
    return bytes(out)


def dequantize_q8_0(raw, n):
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]), count=n // 32)
    return (blocks["d"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)).reshape(-1)


def encode_tensor(arr, ggml_type):
    a = np.ascontiguousarray(arr, dtype=np.float32)
    if ggml_type == GGML_F32:
        return a.tobytes()
    if ggml_type == GGML_F16:
        return a.astype(np.float16).tobytes()
    if ggml_type == GGML_BF16:
        return bf16_bits(a).tobytes()
    if ggml_type == GGML_Q8_0:
        assert a.shape[-1] % 32 == 0, "Q8_0 rows must be a multiple of 32"
        return quantize_q8_0(a.reshape(-1))
    raise ValueError(f"unsupported tensor type {ggml_type}")


def decode_tensor(raw, ggml_type, shape):
    """Return float64 array of PyTorch-order shape from raw bytes."""
    n = int(np.prod(shape)) if shape else 1
    if ggml_type == GGML_F32:
        a = np.frombuffer(raw, dtype="<f4", count=n)
    elif ggml_type == GGML_F16:
        a = np.frombuffer(raw, dtype="<f2", count=n).astype(np.float32)
    elif ggml_type == GGML_BF16:
        a = bf16_to_f32(np.frombuffer(raw, dtype="<u2", count=n))
    elif ggml_type == GGML_Q8_0:
        a = dequantize_q8_0(raw, n)
    else:
        raise ValueError(f"unsupported tensor type {ggml_type}")
    return a.astype(np.float64).reshape(shape)


def tensor_nbytes(ggml_type, n):
    return {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_BF16: 2 * n, GGML_Q8_0: n // 32 * 34}[ggml_type]


def write_gguf(path, metadata, tensors, alignment=32, version=3):
    """metadata: dict key -> python value or Val. tensors: list of
    (name, np.ndarray in PyTorch order, ggml_type). Writes `general.alignment` only
    if it is in metadata."""
    kv = []
    for k, v in metadata.items():
        v = _infer(v)
        kv.append(_pack_str(k) + struct.pack("<I", v.vtype) + _pack_val(v.vtype, v.value, v.elem_type))
    infos, blobs, off = [], [], 0
    for name, arr, t in tensors:
        arr = np.asarray(arr)
        dims = list(reversed(arr.shape)) or [1]
        blob = encode_tensor(arr, t)
        off = (off + alignment - 1) // alignment * alignment
        infos.append(_pack_str(name) + struct.pack("<I", len(dims)) +
                     b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, off))
        blobs.append((off, blob))
        off += len(blob)
    head = GGUF_MAGIC + struct.pack("<IQQ", version, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    pad = (-len(head)) % alignment
    with open(path, "wb") as f:
        f.write(head + b"\0" * pad)
        pos = 0
        for o, b in blobs:
            f.write(b"\0" * (o - pos))
            f.write(b)
            pos = o + len(b)


class GGUFReader:
    """Reads a whole GGUF file: .metadata (key -> python value), .types (key -> vtype),
    .tensors (name -> (ggml_type, shape in PyTorch order, raw bytes))."""
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self._take(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        self.version, n_t, n_kv = struct.unpack("<IQQ", self._take(20))
        self.metadata, self.types = {}, {}
        for _ in range(n_kv):
            k = self._str()
            vt = self._u("<I")
            self.types[k] = vt
            self.metadata[k] = self._val(vt)
        align = self.metadata.get("general.alignment", 32)
        infos = []
        for _ in range(n_t):
            name = self._str()
            nd = self._u("<I")
            dims = [self._u("<Q") for _ in range(nd)]
            t = self._u("<I")
            off = self._u("<Q")
            infos.append((name, t, tuple(reversed(dims)), off))
        data0 = (self.pos + align - 1) // align * align
        self.tensors = {}
        for name, t, shape, off in infos:
            n = int(np.prod(shape))
            start = data0 + off
            self.tensors[name] = (t, shape, self.buf[start:start + tensor_nbytes(t, n)])

    def _take(self, n):
        b = self.buf[self.pos:self.pos + n]
        if len(b) != n:
            raise ValueError("truncated")
        self.pos += n
        return b

    def _u(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _str(self):
        return self._take(self._u("<Q")).decode("utf-8")

    def _val(self, vt):
        if vt == T_STR:
            return self._str()
        if vt == T_ARR:
            et = self._u("<I")
            n = self._u("<Q")
            return [self._val(et) for _ in range(n)]
        return self._u(_SCALAR[vt])

    def tensor(self, name):
        t, shape, raw = self.tensors[name]
        return decode_tensor(raw, t, shape)
