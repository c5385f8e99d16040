"""One contender of bench/inference.sh, in a process of its own: the per-frame latency of an
exported model (ONNX) in ONNX Runtime or in PyTorch eager mode (the graph converted by
onnx2torch), batch 1, one thread.

    inference.py ENGINE MODEL.onnx LEVELS.f32 SECONDS      # ENGINE: onnxruntime or pytorch

Prints one JSON line like the Rust harness (examples/latency.rs in edge-runtime/onnx). A
gate with a native-resolution detail branch takes whole frames (input `frame`) and is checked
on its combined `ood_score` (the graph's fourth output), as the harness does.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def timed(frames, seconds, score):
    warm = time.perf_counter()
    index = 0
    while time.perf_counter() - warm < 0.3:
        score(frames[index % len(frames)])
        index += 1
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 20:
        t = time.perf_counter()
        score(frames[index % len(frames)])
        times.append((time.perf_counter() - t) * 1e6)
        index += 1
    return sorted(times)


def main():
    engine, model, levels, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    import onnx

    graph = onnx.load(model)
    graph_input = graph.graph.input[0]
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    frames = np.fromfile(levels, dtype="<f4").reshape(-1, 1, *dims)
    outputs = [o.name for o in graph.graph.output]
    checked = "ood_score" if "ood_score" in outputs else "bits_per_dim"
    column = outputs.index(checked)
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

        def score(frame):
            return float(session.run([checked], {graph_input.name: frame})[0][0])
    elif engine == "pytorch":
        import torch
        from onnx2torch import convert

        torch.set_num_threads(1)
        module = convert(graph).eval()

        def score(frame):
            with torch.inference_mode():
                return float(module(torch.from_numpy(frame))[column][0])
    else:
        raise SystemExit(f"unknown engine {engine}: onnxruntime or pytorch")
    bpd = [score(frames[i]) for i in range(min(8, len(frames)))]
    times = timed(frames, seconds, score)
    at = lambda q: times[int((len(times) - 1) * q)]  # noqa: E731
    print(json.dumps({
        "engine": engine, "median_us": round(at(0.5), 2), "q1_us": round(at(0.25), 2),
        "q3_us": round(at(0.75), 2), "frames": len(times), checked: bpd,
    }))


if __name__ == "__main__":
    main()
