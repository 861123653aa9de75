#!/usr/bin/env python3
"""A stand-in Magma model server that does real GPU work, for
scripts/gpu/real-driver-check.sh.

Same HTTP shape as the Magma server the sidecar fronts:

    GET  /health   -> {"status": "healthy", "model_loaded": true}
    POST /predict  {"image": "<base64>", "prompt": "..."}
                   -> {"text_response": "...",
                       "normalized_actions": [7 floats],
                       "delta_values": [7 floats]}

At start it allocates --weights-gib of bf16 "weights" on the device (so the
process holds a known amount of GPU memory that NVML must report), and each
/predict runs --matmuls products of two --matmul-size square bf16 matrices and
waits for them (torch.cuda.synchronize), about 50-100 ms on an H200 with the
defaults. Python standard library plus torch; nothing is downloaded.

--backend stub needs no torch at all (a short sleep per request): it is for
dry-running the HTTP side and the check script on a machine without a GPU.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GIB = 1 << 30


def log(message):
    print(f"[torch_model_server pid={os.getpid()}] {message}", file=sys.stderr, flush=True)


class TorchModel:
    """Holds the weights and runs the matmuls of one request."""

    def __init__(self, device, weights_gib, matmul_size, matmuls):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.matmuls = matmuls
        started = time.monotonic()
        if self.device.type == "cuda":
            torch.cuda.init()
            log(f"device {torch.cuda.get_device_name(self.device)}, torch {torch.__version__}")
        # The "weights": one plain allocation through torch's caching allocator
        # (cudaMalloc underneath), filled so the pages are really touched.
        elements = int(weights_gib * GIB) // 2  # bf16 is 2 bytes
        self.weights = torch.empty(elements, dtype=torch.bfloat16, device=self.device)
        self.weights.normal_()
        # Operands of the per-request products.
        n = matmul_size
        self.a = torch.randn(n, n, dtype=torch.bfloat16, device=self.device) / math.sqrt(n)
        self.b = torch.randn(n, n, dtype=torch.bfloat16, device=self.device) / math.sqrt(n)
        # Warm up (cuBLAS handle, kernel selection) before /health says yes.
        self._products()
        self._sync()
        if self.device.type == "cuda":
            allocated = torch.cuda.memory_allocated(self.device)
            reserved = torch.cuda.memory_reserved(self.device)
            log(f"allocated {allocated} bytes ({allocated / GIB:.2f} GiB), "
                f"reserved {reserved} bytes, in {time.monotonic() - started:.1f} s")
        else:
            log(f"weights {elements * 2} bytes on {self.device}, in {time.monotonic() - started:.1f} s")

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _products(self):
        x = self.a
        for _ in range(self.matmuls):
            x = x @ self.b
        return x

    def predict(self, prompt):
        with self.torch.inference_mode():
            x = self._products()
            # Touch the weights too, so the big allocation is "used".
            bias = self.weights[: 14].float()
            head = (x[0, :14].float() + bias).tanh()
            self._sync()
            values = head.cpu().tolist()
        return values[:7], values[7:14]


class StubModel:
    """No torch: a few milliseconds of sleep per request (dry runs only)."""

    def __init__(self, sleep_ms):
        self.sleep = sleep_ms / 1000.0
        log(f"stub backend, {sleep_ms} ms per request")

    def predict(self, prompt):
        time.sleep(self.sleep)
        seed = (len(prompt) % 7) / 10.0
        actions = [math.tanh(seed + i / 10.0) for i in range(7)]
        deltas = [math.tanh(seed - i / 10.0) for i in range(7)]
        return actions, deltas


class Handler(BaseHTTPRequestHandler):
    model = None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request is too much at load
        pass

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._json(200, {"status": "healthy", "model_loaded": True})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/predict":
            self._json(404, {"detail": "Not Found"})
            return
        try:
            request = json.loads(raw or b"{}")
            prompt = str(request.get("prompt", ""))
            if not request.get("image"):
                raise ValueError("image is required")
        except (ValueError, AttributeError) as error:
            self._json(422, {"detail": str(error)})
            return
        actions, deltas = self.model.predict(prompt)
        self._json(200, {
            "text_response": f"Moving the gripper as asked: {prompt[:64]}",
            "normalized_actions": actions,
            "delta_values": deltas,
        })


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--backend", choices=["torch", "stub"], default="torch")
    parser.add_argument("--device", default="cuda", help="torch device (cuda, cuda:0, cpu)")
    parser.add_argument("--weights-gib", type=float, default=16.0)
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--matmuls", type=int, default=48,
                        help="products per request (48 x 8192^3 bf16: ~70 ms on an H200)")
    parser.add_argument("--stub-ms", type=float, default=5.0)
    args = parser.parse_args()

    if args.backend == "stub":
        model = StubModel(args.stub_ms)
    else:
        model = TorchModel(args.device, args.weights_gib, args.matmul_size, args.matmuls)
    Handler.model = model
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    log(f"listening on {args.host}:{args.port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
