"""The malformed bodies of issue 12.5, with the status each must get."""

MALFORMED: dict[str, tuple[bytes, int]] = {
    "deep nesting": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 413),  # 200 kB: over the size limit
    "deep nesting within the size limit": (b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400),
    "10 MB string": (b'{"a": "' + b"x" * 10_000_000 + b'"}', 413),
    "invalid UTF-8": (b'{"channel": "\xff\xfe\xfd"}', 400),
    "duplicate keys": (b'{"channel": "phone", "channel": "email"}', 400),
    "number out of range": (b'{"a": 1' + b"0" * 5000 + b"}", 400),
}
