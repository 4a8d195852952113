"""PEPS FULL_MAJA: credentials, the WPS protocol and its HTTP client."""
