"""PEPS FULL_MAJA: credentials, the WPS protocol, downloads and a local emulator."""
