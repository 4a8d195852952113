"""Reading (and, for tests and the demo, writing) MAJA L2A products in MUSCATE format."""

from fullmaja_stac.maja.product import Grid, MajaProduct, RasterFile, read_product

__all__ = ["Grid", "MajaProduct", "RasterFile", "read_product"]
