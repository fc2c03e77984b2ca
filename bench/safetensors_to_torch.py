"""Rewrites a safetensors file as torch.save files (zip and legacy) of the same state dict,
with Debian's python3-torch (no safetensors package needed).

    /usr/bin/python3 bench/safetensors_to_torch.py IN.safetensors OUT_PREFIX
"""
import collections
import json
import struct
import sys

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
          "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        buffer = bytearray(f.read())
    state = collections.OrderedDict()
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        flat = torch.frombuffer(buffer[begin:end], dtype=DTYPES[entry["dtype"]]) if end > begin \
            else torch.empty(0, dtype=DTYPES[entry["dtype"]])
        state[name] = flat.reshape(entry["shape"]).clone()
    return state


if __name__ == "__main__":
    state = read(sys.argv[1])
    torch.save(state, sys.argv[2] + ".zip.pth")
    torch.save(state, sys.argv[2] + ".legacy.pth", _use_new_zipfile_serialization=False)
    # As DETR and MMF ship them: the state under "model", next to other entries.
    torch.save({"model": state, "epoch": 1}, sys.argv[2] + ".nested.pth")
