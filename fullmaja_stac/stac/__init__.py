"""STAC building: items from products, the collection, and the catalog on disk."""
