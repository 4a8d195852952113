"""The trust boundaries, one module per kind of outside data: names that become paths
(``paths``), network reads and credentials (``remote``), remote documents (``records``).
docs/ARCHITECTURE.md, "Trust boundaries", says where each is used."""
