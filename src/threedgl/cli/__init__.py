"""The ``3dgl`` command line."""
