"""Reads an HdrHistogram interval log (.hlog) with Python's own zlib, as HdrHistogram's readers
do: prints the number of intervals and the total count of their histograms."""
import base64
import struct
import sys
import zlib

V2_COMPRESSED = 0x1C849314
V2 = 0x1C849313


def counts(encoded):
    raw = base64.b64decode(encoded)
    cookie, length = struct.unpack(">II", raw[:8])
    assert cookie == V2_COMPRESSED, hex(cookie)
    plain = zlib.decompress(raw[8:8 + length])
    cookie, payload_len = struct.unpack(">II", plain[:8])
    assert cookie == V2, hex(cookie)
    payload = plain[40:40 + payload_len]
    assert len(payload) == payload_len
    total, i = 0, 0
    while i < len(payload):
        value, shift = 0, 0
        while True:
            byte = payload[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        value = (value >> 1) ^ -(value & 1)
        if value > 0:
            total += value
    return total


def main(path):
    intervals, total = 0, 0
    with open(path) as f:
        for line in f:
            if line.startswith("#") or line.startswith('"'):
                continue
            fields = line.strip().split(",")
            intervals += 1
            total += counts(fields[3])
    print(intervals, total)


if __name__ == "__main__":
    main(sys.argv[1])
