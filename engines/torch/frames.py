"""The worker's frames (docs/engine.md, "The torch worker"): the channel, the hello, and
tensors in and out of a frame's bytes.

Every message, both ways, is one frame:

    4 bytes   little-endian length N of the header
    N bytes   the header: a JSON object (UTF-8)
    ...       the raw bytes of the tensors the header lists under "tensors", in order:
              [{"name": str, "dtype": "float32" | "int64" | "bfloat16", "shape": [int...]}]
"""
import json
import os
import platform
import struct

PROTOCOL = 1
DTYPES = {"float32": 4, "int64": 8, "bfloat16": 2}


class Channel:
    """Frames over two binary streams."""

    def __init__(self, read, write):
        self.read_stream, self.write_stream = read, write

    def _read_exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.read_stream.read(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def receive(self):
        """(header, [bytes per tensor]) or None at the end of the input."""
        prefix = self._read_exactly(4)
        if prefix is None:
            return None
        (n,) = struct.unpack("<I", prefix)
        body = self._read_exactly(n)
        if body is None:
            raise EOFError("the input ended inside a frame's header")
        header = json.loads(body.decode("utf-8"))
        blobs = []
        for t in header.get("tensors", []):
            count = 1
            for d in t["shape"]:
                count *= d
            blob = self._read_exactly(count * DTYPES[t["dtype"]])
            if blob is None:
                raise EOFError("the input ended inside tensor '%s'" % t.get("name"))
            blobs.append(blob)
        return header, blobs

    def send(self, header, blobs=()):
        body = json.dumps(header, separators=(",", ":")).encode("utf-8")
        self.write_stream.write(struct.pack("<I", len(body)) + body)
        for b in blobs:
            self.write_stream.write(b)
        self.write_stream.flush()


def hello():
    """What this worker has: versions, GPUs, and the packages it could not import."""
    info = {"op": "hello", "protocol": int(os.environ.get("HAPS_TORCH_WORKER_PROTOCOL", PROTOCOL)),
            "python": platform.python_version(), "torch": None, "transformers": None, "cuda": None,
            "devices": [], "missing": []}
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                info["devices"].append({"index": i, "name": p.name, "memory": p.total_memory})
    except Exception:
        info["missing"].append("torch")
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception:
        info["missing"].append("transformers")
    return info


def float_tensors(named, header=None):
    """A reply carrying float32 tensors: the header (with "tensors" described) and their bytes."""
    out = [(n, v.detach().float().cpu().contiguous()) for n, v in named]
    header = dict(header or {}, tensors=[{"name": n, "dtype": "float32", "shape": list(v.shape)} for n, v in out])
    return header, [v.numpy().tobytes() for _, v in out]


def from_blob(described, blob, device):
    """A tensor of a request, from its description and bytes."""
    import torch
    dtype = {"float32": torch.float32, "int64": torch.int64}[described["dtype"]]
    return torch.frombuffer(bytearray(blob), dtype=dtype).reshape(described["shape"]).to(device)
