#!/usr/bin/python3
"""Reads a TensorBoard event file with protobuf alone (Debian's python3-protobuf).

The Event / Summary / SessionLog messages are declared here with their field numbers
from tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto, so
no TensorFlow is needed. Every record's masked CRC-32C is checked. Prints a JSON list:
[{"wall_time", "step", "file_version", "session_status", "scalars": {tag: value}}].
"""
import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def event_class():
    proto = descriptor_pb2.FileDescriptorProto(name="tfevents_reader.proto", package="reader",
                                               syntax="proto3")

    def message(name, fields):
        m = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("Value", [("tag", 1, F.TYPE_STRING, opt, None),
                      ("simple_value", 2, F.TYPE_FLOAT, opt, None)])
    message("Summary", [("value", 1, F.TYPE_MESSAGE, rep, ".reader.Value")])
    # SessionLog.status is an enum (START = 1): an int32 reads the same varint.
    message("SessionLog", [("status", 1, F.TYPE_INT32, opt, None)])
    message("Event", [("wall_time", 1, F.TYPE_DOUBLE, opt, None),
                      ("step", 2, F.TYPE_INT64, opt, None),
                      ("file_version", 3, F.TYPE_STRING, opt, None),
                      ("summary", 5, F.TYPE_MESSAGE, opt, ".reader.Summary"),
                      ("session_log", 6, F.TYPE_MESSAGE, opt, ".reader.SessionLog")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("reader.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def main(path):
    Event = event_class()
    data = open(path, "rb").read()
    out, at = [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if length_crc != masked(crc32c(header)):
            sys.exit(f"{path}: byte {at}: bad length CRC")
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if len(body) != length or body_crc != masked(crc32c(body)):
            sys.exit(f"{path}: byte {at}: bad data CRC")
        event = Event()
        event.ParseFromString(body)
        out.append({"wall_time": event.wall_time, "step": event.step,
                    "file_version": event.file_version,
                    "session_status": event.session_log.status,
                    "scalars": {v.tag: v.simple_value for v in event.summary.value}})
        at += 16 + length
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
