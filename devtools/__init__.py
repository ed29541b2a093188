"""Developer tools that never ship in a production image.

* :mod:`~devtools.protogen` - regenerates the committed protobuf code in ``meshpb/`` (``make protos``).
"""
