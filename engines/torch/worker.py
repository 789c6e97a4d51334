#!/usr/bin/env python3
"""haps-pipe's torch engine worker (docs/engine.md, "The torch worker").

haps-pipe starts this program and talks to it over its standard input and output; it does
tensor work only (the method, prompts, parsing, rewards, schedules and seeds stay in Swift).
Every message, both ways, is one frame:

    4 bytes   little-endian length N of the header
    N bytes   the header: a JSON object (UTF-8)
    ...       the raw bytes of the tensors the header lists under "tensors", in order:
              [{"name": str, "dtype": "float32" | "int64" | "bfloat16", "shape": [int...]}]

The worker speaks first: a "hello" frame with the protocol version, Python's, torch's,
transformers' and CUDA's versions (null when absent), the GPUs, and "missing": the packages
it could not import. Then each request {"id": n, "op": str, ...} gets one reply
{"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": {"type": str, "message": str}}.
The worker starts without torch (to say so); ops that need it fail with a clear error. It
exits on "shutdown", at the end of its input, or when its parent dies.
"""
import json
import os
import platform
import struct
import sys
import traceback

PROTOCOL = 1
DTYPES = {"float32": 4, "int64": 8, "bfloat16": 2}


def die_with_parent():
    """Linux: be killed when the process that started us dies (PR_SET_PDEATHSIG), so that a
    haps-pipe killed with -9 leaves no worker holding GPU memory."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(1)
    except Exception:
        pass


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


class Worker:
    def __init__(self, channel):
        self.channel = channel

    def op_echo(self, request, blobs):
        """The framing's own check: the tensors come back as they came, byte for byte."""
        return {"tensors": request.get("tensors", [])}, blobs

    def serve(self):
        self.channel.send(hello())
        while True:
            message = self.channel.receive()
            if message is None:
                return
            request, blobs = message
            op = request.get("op")
            if op == "shutdown":
                self.channel.send({"id": request.get("id"), "ok": True})
                return
            handler = getattr(self, "op_" + str(op), None)
            try:
                if handler is None:
                    raise KeyError("unknown op '%s'" % op)
                header, out = handler(request, blobs)
                header.update({"id": request.get("id"), "ok": True})
                self.channel.send(header, out)
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                self.channel.send({"id": request.get("id"), "ok": False,
                                   "error": {"type": type(e).__name__, "message": str(e)}})


def main():
    die_with_parent()
    # The frames get the real standard output; anything a library prints goes to standard
    # error instead of into the protocol.
    frames = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        Worker(Channel(sys.stdin.buffer, frames)).serve()
    except EOFError as e:
        print("haps-pipe torch worker: %s" % e, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
