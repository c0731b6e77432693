#!/usr/bin/env python3
"""Serve vlmn's segmenter protocol (docs/segmenter.md, version 1) with a local Grounded
SAM 2 install: Grounding DINO (Hugging Face transformers) finds boxes for the prompt,
SAM 2's image predictor turns each box into a mask, and the masks go back as COCO RLE
(uncompressed run lengths, column-major). Not run in CI (needs the models' weights).

  python3 tools/grounded_sam2_server.py --port 8765 \
      --sam2-checkpoint checkpoints/sam2.1_hiera_large.pt \
      --sam2-config configs/sam2.1/sam2.1_hiera_l.yaml \
      --grounding-model IDEA-Research/grounding-dino-tiny --device cuda
  vlmn simulate RUN --visual segmenter --segmenter-url http://127.0.0.1:8765

Needs: torch, transformers, pillow, numpy and the `sam2` package of Grounded SAM 2 /
SAM 2 (pip install -e . in its checkout). One request is segmented at a time."""
import argparse
import base64
import io
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = 1
MAX_BODY = 64 << 20


def rle_counts(mask):
    """Uncompressed COCO RLE of a boolean HxW array: run lengths in column-major order,
    starting with a (possibly empty) run of zeros."""
    import numpy as np
    flat = np.asarray(mask, dtype=bool).flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1] if flat.size else 1]))))
    return [int(x) for x in np.diff(np.concatenate(([0], edges)))]


class Segmenter:
    def __init__(self, args):
        import torch
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        self.torch = torch
        self.device = args.device
        self.processor = AutoProcessor.from_pretrained(args.grounding_model)
        self.dino = AutoModelForZeroShotObjectDetection.from_pretrained(args.grounding_model).to(self.device)
        self.sam = SAM2ImagePredictor(build_sam2(args.sam2_config, args.sam2_checkpoint, device=self.device))
        self.lock = threading.Lock()

    def detect(self, image, prompt, box_t, text_t):
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.device)
        with self.torch.no_grad():
            out = self.dino(**inputs)
        kw = dict(target_sizes=[image.size[::-1]], text_threshold=text_t)
        try:  # the argument was renamed in newer transformers
            res = self.processor.post_process_grounded_object_detection(out, inputs.input_ids, box_threshold=box_t, **kw)
        except TypeError:
            res = self.processor.post_process_grounded_object_detection(out, inputs.input_ids, threshold=box_t, **kw)
        r = res[0]
        labels = r.get("text_labels", r.get("labels", []))
        return r["boxes"].cpu().numpy(), r["scores"].cpu().numpy().tolist(), [str(x) for x in labels]

    def segment(self, image, prompt, box_t, text_t):
        import numpy as np
        with self.lock:
            boxes, scores, labels = self.detect(image, prompt, box_t, text_t)
            if len(boxes) == 0:
                return []
            self.sam.set_image(np.array(image))
            masks, _, _ = self.sam.predict(point_coords=None, point_labels=None, box=boxes, multimask_output=False)
        if masks.ndim == 4:
            masks = masks.squeeze(1)
        h, w = masks.shape[-2:]
        return [{"rle": {"size": [int(h), int(w)], "counts": rle_counts(m > 0)}, "score": float(s), "label": l}
                for m, s, l in zip(masks, scores, labels)]


def make_handler(seg):
    from PIL import Image

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path.rstrip("/") != "/segment":
                return self.reply(404, {"error": "no such endpoint (POST /segment)"})
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > MAX_BODY:
                return self.reply(413, {"error": "body missing or too large"})
            try:
                req = json.loads(self.rfile.read(n))
                if req.get("version") != VERSION:
                    return self.reply(400, {"error": "protocol version %r (this server speaks %d)" %
                                            (req.get("version"), VERSION)})
                image = Image.open(io.BytesIO(base64.b64decode(req["image"]))).convert("RGB")
                prompt = str(req["prompt"]).lower().strip()
                if not prompt.endswith("."):
                    prompt += "."
                box_t = float(req.get("box_threshold", 0.35))
                text_t = float(req.get("text_threshold", 0.25))
            except Exception as e:  # a bad request: the client's fault, not retried
                return self.reply(400, {"error": "bad request: %s" % e})
            try:
                masks = seg.segment(image, prompt, box_t, text_t)
            except Exception as e:
                return self.reply(500, {"error": "segmentation failed: %s" % e})
            self.reply(200, {"version": VERSION, "width": image.width, "height": image.height, "masks": masks})

        def log_message(self, fmt, *a):
            sys.stderr.write("grounded_sam2_server: " + fmt % a + "\n")

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--sam2-checkpoint", required=True)
    ap.add_argument("--sam2-config", required=True)
    ap.add_argument("--grounding-model", default="IDEA-Research/grounding-dino-tiny")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    seg = Segmenter(args)
    srv = ThreadingHTTPServer((args.host, args.port), make_handler(seg))
    sys.stderr.write("grounded_sam2_server: serving http://%s:%d/segment\n" % (args.host, args.port))
    srv.serve_forever()


if __name__ == "__main__":
    main()
