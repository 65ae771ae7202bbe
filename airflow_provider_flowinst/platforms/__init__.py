"""One pure module per platform: how to build, sign and read each call. No I/O happens here."""
