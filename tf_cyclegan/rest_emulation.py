"""An offline emulation of TF Serving's REST predict API on a SavedModel (the model server needs no install).

``predict_rest(saved_model_dir, body)`` takes the JSON body a client would POST to
``/v1/models/<name>:predict`` and returns the JSON TF Serving would answer, using the
same conventions: row (``instances``) or columnar (``inputs``) format, ``{"b64": ...}``
for tensors whose alias ends in ``_bytes``, and ``{"error": ...}`` for a bad request.
Use it to test request bodies without installing the model server.
"""

import base64
import json

import tensorflow as tf


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode(name, value):
    if hasattr(value, "tolist"):
        value = value.tolist()
    if name.endswith("_bytes"):
        if isinstance(value, list):
            return [_encode(name, v) for v in value]
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _not_a_number(constant):
    raise ValueError(f"{constant} is not a JSON number")


def _error_line(message):
    """The informative line of a TF error (not the 'Graph execution error' framing)."""
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(skip)]
    return (useful or lines or ["invalid request"])[-1]


def predict_rest(saved_model, body):
    """Answers a REST predict body (dict or JSON text) as TF Serving would; returns a dict."""

    loaded = saved_model if hasattr(saved_model, "signatures") else tf.saved_model.load(str(saved_model))
    try:
        request = json.loads(body, parse_constant=_not_a_number) if isinstance(body, (str, bytes)) else body
    except ValueError as error:
        return {"error": f"JSON Parse error: {error}"}
    except RecursionError:
        return {"error": "JSON Parse error: nested too deeply"}
    if not isinstance(request, dict):
        return {"error": "the request body must be a JSON object with 'instances' or 'inputs'"}
    name = request.get("signature_name", "serving_default")
    if not isinstance(name, str):
        return {"error": "signature_name must be a string"}
    if name not in loaded.signatures:
        return {"error": f'Serving signature name: "{name}" not found in signature def'}
    function = loaded.signatures[name]
    input_specs = function.structured_input_signature[1]
    try:
        if "instances" in request:
            rows = request["instances"]
            if len(input_specs) == 1:
                (key,) = input_specs
                inputs = {key: [_decode(r[key] if isinstance(r, dict) and key in r else r) for r in rows]}
            else:
                inputs = {key: [_decode(r[key]) for r in rows] for key in input_specs}
        elif "inputs" in request:
            columns = request["inputs"]
            if not isinstance(columns, dict) or set(columns) - set(input_specs):
                (key,) = input_specs
                columns = {key: columns}
            inputs = {key: _decode(value) for key, value in columns.items()}
        else:
            return {"error": "Missing 'inputs' or 'instances' key"}
        tensors = {key: tf.constant(value, dtype=input_specs[key].dtype) for key, value in inputs.items()}
        outputs = function(**tensors)
    except (tf.errors.OpError, ValueError, TypeError, KeyError, IndexError) as error:
        return {"error": _error_line(getattr(error, "message", None) or str(error))}
    except RecursionError:
        return {"error": "the request's values are nested too deeply"}
    outputs = {key: value.numpy() for key, value in outputs.items()}
    if "instances" in request:
        if len(outputs) == 1:
            ((key, value),) = outputs.items()
            return {"predictions": [_encode(key, row) for row in value]}
        count = len(next(iter(outputs.values())))
        return {"predictions": [{k: _encode(k, v[i]) for k, v in outputs.items()} for i in range(count)]}
    if len(outputs) == 1:
        ((key, value),) = outputs.items()
        return {"outputs": _encode(key, value)}
    return {"outputs": {k: _encode(k, v) for k, v in outputs.items()}}
