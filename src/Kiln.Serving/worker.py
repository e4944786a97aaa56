"""Kiln's predictor worker: hosts the user's predictor (load() / predict(inputs)) for Kiln's inference server.

Frames on stdin/stdout: a 4-byte big-endian length, then that many bytes of UTF-8 JSON. The predictor's own prints go to
stderr, so they cannot corrupt the frames. First frame out: hello (ready or a load error). Then one reply per request.
"""
import importlib.util
import inspect
import json
import os
import struct
import sys
import traceback

proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)  # print() in the predictor now goes to stderr
sys.stdout = sys.stderr
proto_in = os.fdopen(os.dup(0), "rb", buffering=0)


def send(obj):
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    proto_out.write(struct.pack(">I", len(data)) + data)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = proto_in.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def receive():
    head = read_exact(4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    body = read_exact(n)
    return None if body is None else json.loads(body)


def to_plain(value):
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def shape_and_flat(value):
    value = to_plain(value)
    if not isinstance(value, list):
        return [], [value]
    if not value:
        return [0], []
    if isinstance(value[0], list):
        parts = [shape_and_flat(v) for v in value]
        inner = parts[0][0]
        if any(p[0] != inner for p in parts):
            raise ValueError("predict returned a ragged nested list")
        return [len(value)] + inner, [x for p in parts for x in p[1]]
    return [len(value)], value


def datatype(flat):
    if all(isinstance(x, bool) for x in flat):
        return "BOOL"
    if all(isinstance(x, int) and not isinstance(x, bool) for x in flat):
        return "INT64"
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
        return "FP64"
    if all(isinstance(x, str) for x in flat):
        return "BYTES"
    raise ValueError("predict returned values that are not all numbers, booleans or strings")


def outputs_of(result, declared):
    if not isinstance(result, dict):
        result = {"output-0": result}
    outs = []
    for name, value in result.items():
        shape, flat = shape_and_flat(value)
        # The datatype the predictor declares in OUTPUTS wins (1.0 and 1 are the same JSON number); else it is inferred.
        dtype = declared.get(str(name)) or (datatype(flat) if flat else "FP64")
        outs.append({"name": str(name), "shape": shape, "datatype": dtype, "data": flat})
    return outs


def main():
    path = sys.argv[1]
    try:
        spec = importlib.util.spec_from_file_location("kiln_predictor", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        spec.loader.exec_module(module)
        load = getattr(module, "load", None)
        predict = getattr(module, "predict")
        state = None
        if load is not None:
            state = load(os.environ.get("KILN_MODEL_PATH")) if len(inspect.signature(load).parameters) >= 1 else load()
        takes_state = len(inspect.signature(predict).parameters) >= 2
        example = getattr(module, "EXAMPLE", None)
        declared = {o["name"]: o.get("datatype") for o in (getattr(module, "OUTPUTS", None) or []) if isinstance(o, dict) and "name" in o}
        send({"ok": True, "inputs": getattr(module, "INPUTS", None), "outputs": getattr(module, "OUTPUTS", None), "example": example})
    except BaseException:
        send({"ok": False, "error": traceback.format_exc(limit=5)})
        return 1
    while True:
        request = receive()
        if request is None:
            return 0
        try:
            inputs = {i["name"]: i for i in request["inputs"]}
            result = predict(state, inputs) if takes_state else predict(inputs)
            send({"ok": True, "outputs": outputs_of(result, declared)})
        except SystemExit:
            raise
        except BaseException as e:
            send({"ok": False, "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    sys.exit(main())
